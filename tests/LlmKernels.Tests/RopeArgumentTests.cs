namespace LlmKernels.Tests;

/// <summary>
/// Every bad input to Kernels.Rope, BuildRopeCache, RopeCache.Build and the position helpers gets
/// an exception naming the parameter before anything is written; and the valid edge cases (no
/// tokens, q only, q and k in one fused buffer) just work.
/// </summary>
public sealed class RopeArgumentTests
{
    private const int Heads = 4, KvHeads = 2, HeadDim = 16, Tokens = 3, Stride = (Heads + 2 * KvHeads) * HeadDim;
    private static readonly RopeCache s_cache = RopeCache.Build(8, HeadDim);

    private static void Throws(string paramName, Action action)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(paramName, e.ParamName);
    }

    /// <summary>Runs a Rope call on a fused buffer and checks it threw naming the parameter and wrote nothing.</summary>
    private static void RopeThrows(string paramName, Action<float[]> call)
    {
        var qkv = new float[Tokens * Stride];
        qkv.AsSpan().Fill(0.75f);
        Throws(paramName, () => call(qkv));
        Assert.All(qkv, v => Assert.Equal(0.75f, v));
    }

    private static readonly int[] s_positions = [0, 1, 7];

    [Fact]
    public void ValidCallsWork()
    {
        var qkv = new float[Tokens * Stride];
        Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim), s_positions, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: Stride);
        Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, s_cache, Heads, 0, HeadDim, qStride: Stride);
        Kernels.Rope<float>(Span<float>.Empty, Span<float>.Empty, ReadOnlySpan<int>.Empty, s_cache, Heads, KvHeads, HeadDim);
        Kernels.Rope<Half>(new Half[Tokens * Heads * HeadDim], new Half[Tokens * KvHeads * HeadDim], new long[] { 7, 0, 3 }, s_cache,
                           Heads, KvHeads, HeadDim);
    }

    [Fact]
    public void RotaryDimAboveHeadDimNamesCache() =>
        RopeThrows("cache", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, s_cache, Heads * 2, 0, HeadDim / 2));

    [Fact]
    public void OddOrBadRotaryDimIsRefused()
    {
        RopeThrows("rotaryDim", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, new float[8 * 5], 5, Heads, 0, HeadDim, qStride: Stride));
        RopeThrows("rotaryDim", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, new float[8 * 4], 0, Heads, 0, HeadDim, qStride: Stride));
        RopeThrows("cosSinCache", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, new float[8 * 16 + 1], 16, Heads, 0, HeadDim, qStride: Stride));
        RopeThrows("cosSinCache", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, new float[8 * 32], 32, Heads, 0, HeadDim, qStride: Stride));
        Throws("rotaryDim", () => RopeCache.Build(8, 7));
        Throws("rotaryDim", () => RopeCache.Build(8, 0));
    }

    [Fact]
    public void HeadsNotDivisibleByKvHeadsNamesNumKvHeads()
    {
        RopeThrows("numKvHeads", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim), s_positions, s_cache, Heads, 3, HeadDim, qStride: Stride, kStride: Stride));
        RopeThrows("numKvHeads", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim), s_positions, s_cache, Heads, 0, HeadDim, qStride: Stride, kStride: Stride));
    }

    [Fact]
    public void PositionOutOfRangeNamesPositions()
    {
        RopeThrows("positions", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim), new[] { 0, 8, 1 }, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: Stride));
        RopeThrows("positions", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim), new[] { 0, 1, -1 }, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: Stride));
        RopeThrows("positions", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, new long[] { 1L << 32, 0, 0 }, s_cache, Heads, 0, HeadDim, qStride: Stride));
        var e = Assert.ThrowsAny<ArgumentException>(() => Kernels.Rope<float>(new float[Tokens * Heads * HeadDim], Span<float>.Empty, new[] { 0, 1, 9 }, s_cache, Heads, 0, HeadDim));
        Assert.Contains("positions[2]", e.Message);
    }

    [Fact]
    public void MismatchedLengthsNameTheSpan()
    {
        RopeThrows("q", qkv => Kernels.Rope<float>(qkv.AsSpan(0, 2 * Stride), Span<float>.Empty, s_positions, s_cache, Heads, 0, HeadDim, qStride: Stride));
        RopeThrows("k", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim, Stride), s_positions, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: Stride));
        RopeThrows("q", qkv => Kernels.Rope<float>(qkv.AsSpan(0, Tokens * Heads * HeadDim - 1), Span<float>.Empty, s_positions, s_cache, Heads, 0, HeadDim));
    }

    [Fact]
    public void BadStridesAndSizesNameThem()
    {
        RopeThrows("qStride", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, s_cache, Heads, 0, HeadDim, qStride: Heads * HeadDim - 1));
        RopeThrows("kStride", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan(Heads * HeadDim), s_positions, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: 5));
        RopeThrows("numHeads", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, s_cache, 0, 0, HeadDim));
        RopeThrows("headDim", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, s_cache, Heads, 0, 0));
        RopeThrows("style", qkv => Kernels.Rope<float>(qkv, Span<float>.Empty, s_positions, s_cache, Heads, 0, HeadDim, (RopeStyle)5, Stride));
        Assert.Throws<ArgumentNullException>(() => Kernels.Rope<float>(new float[64], Span<float>.Empty, s_positions, (RopeCache)null!, Heads, 0, HeadDim));
        Assert.Throws<NotSupportedException>(() => Kernels.Rope<double>(new double[Tokens * 64], Span<double>.Empty, s_positions, s_cache, Heads, 0, HeadDim));
    }

    [Fact]
    public void OverlappingQAndKNamesK()
    {
        // k's first head is q's last head: the native overlap check, mapped to the C# parameter k
        RopeThrows("k", qkv => Kernels.Rope<float>(qkv, qkv.AsSpan((Heads - 1) * HeadDim), s_positions, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: Stride));
        RopeThrows("k", qkv => Kernels.Rope<float>(qkv, qkv, s_positions, s_cache, Heads, KvHeads, HeadDim, qStride: Stride, kStride: Stride));
    }

    [Fact]
    public void CacheBuilderRefusesBadInput()
    {
        Throws("maxPosition", () => RopeCache.Build(0, 8));
        Throws("theta", () => RopeCache.Build(8, 8, 0.0));
        Throws("theta", () => RopeCache.Build(8, 8, double.NaN));
        Throws("theta", () => RopeCache.Build(8, 8, -1.0));
        Throws("destination", () => Kernels.BuildRopeCache(new float[63], 8, 8));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Linear(0.5)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Linear(double.NaN)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Dynamic(2, 0)));
        Throws("scaling", () => RopeCache.Build(8, 2, scaling: RopeScaling.Dynamic(2, 4)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Yarn(2, 0)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Yarn(2, 4, betaFast: -1)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Yarn(2, 4, attentionFactor: 0)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Llama3(8, 0)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Llama3(8, 8192, 0, 4)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: RopeScaling.Llama3(8, 8192, 4, 1)));
        Throws("scaling", () => RopeCache.Build(8, 8, scaling: new RopeScaling { RopeType = (RopeScalingType)9 }));
        Throws("maxPosition", () => RopeCache.Build(int.MaxValue, 8));
    }

    [Fact]
    public void PositionHelpersRefuseBadInput()
    {
        Throws("numHeads", () => Positions.AlibiSlopes(0));
        Throws("destination", () => Positions.AlibiSlopes(Span<float>.Empty));
        Throws("dim", () => Positions.SinusoidalPositions(4, 7));
        Throws("dim", () => Positions.SinusoidalPositions(4, 0));
        Throws("numPositions", () => Positions.SinusoidalPositions(-1, 8));
        Throws("theta", () => Positions.SinusoidalPositions(4, 8, 0.0));
        Throws("destination", () => Positions.SinusoidalPositions(new float[9], 8));
        Throws("destination", () => Positions.T5RelativePositionBuckets(new int[5], 2, 3, true));
        Throws("queryLength", () => Positions.T5RelativePositionBuckets(new int[5], -1, 3, true));
        Throws("keyLength", () => Positions.T5RelativePositionBuckets(new int[5], 1, -3, true));
        Throws("numBuckets", () => Positions.T5RelativePositionBuckets(new int[6], 2, 3, true, numBuckets: 3));
        Throws("maxDistance", () => Positions.T5RelativePositionBuckets(new int[6], 2, 3, true, maxDistance: 8));
        Throws("table", () => Positions.T5RelativePositionBias(new float[31 * 2], new float[2 * 6], 2, 3, 2, true));
        Throws("destination", () => Positions.T5RelativePositionBias(new float[32 * 2], new float[2 * 6 - 1], 2, 3, 2, true));
        Throws("numHeads", () => Positions.T5RelativePositionBias(new float[32 * 2], new float[2 * 6], 2, 3, 0, true));
        var shared = new float[32 * 2 + 12];
        Throws("destination", () => Positions.T5RelativePositionBias(shared.AsSpan(0, 64), shared.AsSpan(60, 12), 2, 3, 2, true));
    }
}
