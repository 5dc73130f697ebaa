namespace LlmKernels.Tests;

/// <summary>
/// RopeCache.Build / Kernels.BuildRopeCache for every scaling rule against the formulas written out
/// here in double (HF's modeling_rope_utils and vLLM's rotary_embedding), to one f32 ulp plus
/// 2^-33 (the double angle's own uncertainty at 10^6 radians); known values; the layout.
/// </summary>
public sealed class RopeCacheTests
{
    private static double[] InvFreq(int d, double theta, RopeScaling s, int maxPosition, out double m)
    {
        m = 1.0;
        double baseValue = theta;
        if (s.RopeType == RopeScalingType.Dynamic)
        {
            double length = Math.Max(maxPosition, s.OriginalMaxPositionEmbeddings);
            baseValue = theta * Math.Pow(s.Factor * length / s.OriginalMaxPositionEmbeddings - (s.Factor - 1), d / (d - 2.0));
        }
        var inv = new double[d / 2];
        for (int j = 0; j < d / 2; j++)
            inv[j] = 1.0 / Math.Pow(baseValue, 2.0 * j / d);
        switch (s.RopeType)
        {
            case RopeScalingType.Linear:
                for (int j = 0; j < inv.Length; j++) inv[j] /= s.Factor;
                break;
            case RopeScalingType.Yarn:
            {
                double Dim(double rotations) => d * Math.Log(s.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = Math.Max(Math.Floor(Dim(s.BetaFast)), 0), high = Math.Min(Math.Ceiling(Dim(s.BetaSlow)), d - 1);
                if (low == high) high += 0.001;
                for (int j = 0; j < inv.Length; j++)
                {
                    double ramp = Math.Clamp((j - low) / (high - low), 0, 1);
                    inv[j] = inv[j] / s.Factor * ramp + inv[j] * (1 - ramp);
                }
                m = s.AttentionFactor ?? 0.1 * Math.Log(s.Factor) + 1;
                break;
            }
            case RopeScalingType.Llama3:
                for (int j = 0; j < inv.Length; j++)
                {
                    double wavelength = 2 * Math.PI / inv[j], original = s.OriginalMaxPositionEmbeddings;
                    if (wavelength < original / s.HighFreqFactor) continue;
                    if (wavelength > original / s.LowFreqFactor) { inv[j] /= s.Factor; continue; }
                    double smooth = (original / wavelength - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    inv[j] = (1 - smooth) * inv[j] / s.Factor + smooth * inv[j];
                }
                break;
        }
        return inv;
    }

    public static TheoryData<string, int, int, double, RopeScaling> Rules() => new()
    {
        { "default Llama 2", 4096, 128, 10000.0, RopeScaling.None },
        { "default Llama 3", 8192, 128, 500000.0, RopeScaling.None },
        { "linear x4", 16384, 128, 10000.0, RopeScaling.Linear(4) },
        { "dynamic x2", 8192, 128, 10000.0, RopeScaling.Dynamic(2, 4096) },
        { "dynamic below L0", 1024, 64, 10000.0, RopeScaling.Dynamic(2, 4096) },
        { "yarn x4", 16384, 128, 10000.0, RopeScaling.Yarn(4, 4096) },
        { "yarn x40 attention 1", 4096, 64, 10000.0, RopeScaling.Yarn(40, 4096, attentionFactor: 1.0) },
        { "yarn narrow ramp", 4096, 128, 1000000.0, RopeScaling.Yarn(2, 4096, 4, 2) },
        { "llama3.1", 32768, 128, 500000.0, RopeScaling.Llama3() },
        { "llama3.2", 8192, 64, 500000.0, RopeScaling.Llama3(32) },
    };

    [Theory, MemberData(nameof(Rules))]
    public void MatchesFormulas(string name, int maxPosition, int rotaryDim, double theta, RopeScaling scaling)
    {
        RopeCache cache = RopeCache.Build(maxPosition, rotaryDim, theta, scaling);
        Assert.Equal(maxPosition, cache.MaxPosition);
        Assert.Equal(rotaryDim, cache.RotaryDim);
        Assert.Equal(maxPosition * rotaryDim, cache.CosSin.Length);
        double[] inv = InvFreq(rotaryDim, theta, scaling, maxPosition, out double m);
        int half = rotaryDim / 2;
        ReadOnlySpan<float> values = cache.CosSin;
        for (int p = 0; p < maxPosition; p += p < 64 ? 1 : 61)
            for (int j = 0; j < half; j++)
            {
                double angle = p * inv[j];
                AssertUlp(Math.Cos(angle) * m, values[p * rotaryDim + j], name, "cos", p, j);
                AssertUlp(Math.Sin(angle) * m, values[p * rotaryDim + half + j], name, "sin", p, j);
            }
    }

    private static void AssertUlp(double want, float got, string name, string function, int p, int j)
    {
        double ulp = Math.Max(Math.ScaleB(1.0, Math.ILogB(Math.Abs(want)) - 23), Math.ScaleB(1.0, -149));
        if (!(Math.Abs(got - want) <= ulp + Math.ScaleB(1.0, -33)))
            Assert.Fail($"{name}: {function}[{p}, {j}] = {got}, want {want}");
    }

    [Fact]
    public void KnownValuesUpToAMillion()
    {
        RopeCache cache = RopeCache.Build(1_000_001, 2);
        ReadOnlySpan<float> v = cache.CosSin;
        Assert.Equal(1f, v[0]);
        Assert.Equal(0f, v[1]);
        Assert.Equal(0.5403022766113281f, v[2]);   // cos 1
        Assert.Equal(0.8414709568023682f, v[3]);   // sin 1
        Assert.Equal(0.9367521405220032f, v[2_000_000]);  // cos 10^6
        Assert.Equal(-0.349993497133255f, v[2_000_001]);  // sin 10^6
    }

    [Fact]
    public void YarnDefaultAttentionFactorScalesCosAndSin()
    {
        RopeCache cache = RopeCache.Build(2, 8, 10000.0, RopeScaling.Yarn(4, 64));
        float m = (float)(0.1 * Math.Log(4) + 1);
        Assert.Equal(m, cache.CosSin[0]); // cos 0 x m
    }

    [Fact]
    public void BuildIntoCallerBufferLeavesTheRestAlone()
    {
        var buffer = new float[10 * 8 + 3];
        buffer.AsSpan().Fill(-5f);
        Kernels.BuildRopeCache(buffer, 10, 8, 10000.0, RopeScaling.Linear(2));
        Assert.Equal(RopeCache.Build(10, 8, 10000.0, RopeScaling.Linear(2)).CosSin.ToArray(), buffer.AsSpan(0, 80).ToArray());
        Assert.All(buffer.AsSpan(80).ToArray(), v => Assert.Equal(-5f, v));
    }
}
