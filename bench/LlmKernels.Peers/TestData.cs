namespace LlmKernels.Peers;

/// <summary>
/// Deterministic pseudo-random inputs shared by every family. Every value has 8 significant bits
/// and stays clear of zero, so it is exact in bf16 and a normal f16: a peer that runs at another
/// precision still sees the same numbers, and a comparison is about the kernel, not the input rounding.
/// </summary>
public static unsafe class TestData
{
    public const ulong DefaultSeed = 0x9E3779B97F4A7C15;

    private const float MinMagnitude = 1f / 1024;

    /// <summary>Fills <paramref name="count"/> values uniformly in [low, low + range), advancing <paramref name="state"/>.</summary>
    public static void Fill(float* data, long count, float low, float range, ref ulong state)
    {
        for (long i = 0; i < count; i++)
        {
            float unit = (Next(ref state) >> 40) * (1f / (1 << 24));
            float value = low + range * unit;
            // Keep clear of zero so that the value stays a normal f16 (8 significant bits fit).
            if (MathF.Abs(value) < MinMagnitude)
                value = MathF.CopySign(MinMagnitude, value);
            data[i] = Bf16Codec.Decode(Bf16Codec.Encode(value));
        }
    }

    /// <summary>An integer uniform in [0, <paramref name="count"/>), advancing <paramref name="state"/> (routing choices).</summary>
    public static int Index(int count, ref ulong state) => (int)((Next(ref state) >> 32) * (ulong)count >> 32);

    /// <summary>xorshift64*: fast, deterministic across runs and machines.</summary>
    private static ulong Next(ref ulong state)
    {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>Values per block of <see cref="Create"/>, each block from its own seed.</summary>
    private const long Block = 1 << 20;

    /// <summary>
    /// A buffer of <paramref name="count"/> f32 values from <see cref="Fill"/>, filled in blocks on
    /// every core (the largest inputs hold a hundred million values), each block seeded from
    /// <paramref name="state"/> and its index, so the values do not depend on the core count.
    /// </summary>
    public static NativeBuffer Create(long count, float low, float range, ref ulong state)
    {
        var buffer = new NativeBuffer(count * sizeof(float));
        ulong seed = state;
        float* data = buffer.As<float>();
        Parallel.For(0, (count + Block - 1) / Block, block =>
        {
            ulong blockState = seed ^ (0xD1B54A32D192ED03UL * (ulong)(block + 1));
            Fill(data + block * Block, Math.Min(Block, count - block * Block), low, range, ref blockState);
        });
        state = seed * 0x2545F4914F6CDD1DUL + 1;
        return buffer;
    }
}
