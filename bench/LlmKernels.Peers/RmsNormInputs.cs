namespace LlmKernels.Peers;

/// <summary>
/// The inputs of one <see cref="RmsNormCase"/>, as f32, shared by every peer (each converts them to
/// the element type it runs); values from <see cref="TestData"/>, exact in bf16 and f16.
/// </summary>
public sealed unsafe class RmsNormInputs : IBenchWorkload, INormInputs
{
    private RmsNormInputs(RmsNormCase @case)
    {
        Case = @case;
        X = new NativeBuffer(@case.Elements * sizeof(float));
        Weight = new NativeBuffer(@case.Hidden * sizeof(float));
        Residual = @case.Fused ? new NativeBuffer(@case.Elements * sizeof(float)) : null;
    }

    public RmsNormCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;
    public bool Layer => false;
    public bool Fused => Case.Fused;
    public bool Post => false;
    public long Rows => Case.Rows;
    public long Hidden => Case.Hidden;
    public float Epsilon => RmsNormCase.Epsilon;
    public NativeBuffer X { get; }
    public NativeBuffer Weight { get; }
    public NativeBuffer? Bias => null;

    /// <summary>The residual before the call; null for the unfused form.</summary>
    public NativeBuffer? Residual { get; }

    public static RmsNormInputs Create(RmsNormCase @case, ulong seed = TestData.DefaultSeed)
    {
        var inputs = new RmsNormInputs(@case);
        ulong state = seed;
        // Activations in [-2, 2) with 8 significant bits, the weight in [0.5, 1.5) like a trained
        // norm weight: no value is zero or denormal, and all are bf16 and f16 exact.
        TestData.Fill(inputs.X.As<float>(), @case.Elements, -2f, 4f, ref state);
        TestData.Fill(inputs.Weight.As<float>(), @case.Hidden, 0.5f, 1f, ref state);
        if (inputs.Residual is { } residual)
            TestData.Fill(residual.As<float>(), @case.Elements, -2f, 4f, ref state);
        return inputs;
    }

    public IBenchPeer Create(string peer, int threads, CpuContext context) => RmsNormPeers.Create(peer, this, Case.Dtype, threads, context);

    public CheckResult Check(IBenchPeer peer) => NormCheck.Run((INormPeer)peer, this);

    public void Dispose()
    {
        X.Dispose();
        Weight.Dispose();
        Residual?.Dispose();
    }
}
