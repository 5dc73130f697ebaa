namespace LlmKernels.Peers;

/// <summary>
/// The inputs of one <see cref="RmsNormCase"/>, as f32, shared by every peer (each converts them to
/// the element type it runs). Every value is exactly representable in bf16 and f16, so a peer that
/// runs at another precision still sees the same numbers and the comparison is about the kernel,
/// not the input rounding.
/// </summary>
public sealed unsafe class RmsNormInputs : IDisposable
{
    private RmsNormInputs(RmsNormCase @case)
    {
        Case = @case;
        X = new NativeBuffer(@case.Elements * sizeof(float));
        Weight = new NativeBuffer(@case.Hidden * sizeof(float));
        Residual = @case.Fused ? new NativeBuffer(@case.Elements * sizeof(float)) : null;
    }

    public RmsNormCase Case { get; }
    public NativeBuffer X { get; }
    public NativeBuffer Weight { get; }

    /// <summary>The residual before the call; null for the unfused form.</summary>
    public NativeBuffer? Residual { get; }

    public static RmsNormInputs Create(RmsNormCase @case, ulong seed = 0x9E3779B97F4A7C15)
    {
        var inputs = new RmsNormInputs(@case);
        ulong state = seed;
        // Activations in [-2, 2) with 8 significant bits, the weight in [0.5, 1.5) like a trained
        // norm weight: no value is zero or denormal, and all are bf16 and f16 exact.
        Fill(inputs.X.As<float>(), @case.Elements, -2f, 4f, ref state);
        Fill(inputs.Weight.As<float>(), @case.Hidden, 0.5f, 1f, ref state);
        if (inputs.Residual is { } residual)
            Fill(residual.As<float>(), @case.Elements, -2f, 4f, ref state);
        return inputs;
    }

    private const float MinMagnitude = 1f / 1024;

    private static void Fill(float* data, long count, float low, float range, ref ulong state)
    {
        for (long i = 0; i < count; i++)
        {
            // xorshift64*: fast, deterministic across runs and machines.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ulong bits = state * 0x2545F4914F6CDD1DUL;
            float unit = (bits >> 40) * (1f / (1 << 24));
            float value = low + range * unit;
            // Keep clear of zero so that the value stays a normal f16 (8 significant bits fit).
            if (MathF.Abs(value) < MinMagnitude)
                value = MathF.CopySign(MinMagnitude, value);
            data[i] = Bf16Codec.Decode(Bf16Codec.Encode(value));
        }
    }

    public void Dispose()
    {
        X.Dispose();
        Weight.Dispose();
        Residual?.Dispose();
    }
}
