namespace LlmKernels.Tests;

/// <summary>
/// Positions.AlibiSlopes, SinusoidalPositions and the T5 buckets and bias against independent
/// implementations (vLLM's ALiBi formula; HF's _relative_position_bucket in f32) and known values.
/// </summary>
public sealed class PositionHelperTests
{
    [Fact]
    public void AlibiMatchesVllmFormulaFor1To64Heads()
    {
        for (int n = 1; n <= 64; n++)
        {
            float[] slopes = Positions.AlibiSlopes(n);
            int closest = 1 << (int)Math.Floor(Math.Log2(n));
            double baseValue = Math.Pow(2, -Math.Pow(2, -(Math.Log2(closest) - 3)));
            double extra = Math.Pow(2, -Math.Pow(2, -(Math.Log2(2 * closest) - 3)));
            for (int i = 0; i < n; i++)
            {
                double want = i < closest ? Math.Pow(baseValue, i + 1) : Math.Pow(extra, 2 * (i - closest) + 1);
                Assert.True(Math.Abs(slopes[i] - want) <= Math.ScaleB(want, -24), $"{n} heads: slope {i} = {slopes[i]}, want {want}");
            }
        }
    }

    [Fact]
    public void AlibiKnownValues()
    {
        Assert.Equal(new[] { 1f / 2, 1f / 4, 1f / 8, 1f / 16, 1f / 32, 1f / 64, 1f / 128, 1f / 256 }, Positions.AlibiSlopes(8));
        float[] twelve = Positions.AlibiSlopes(12);
        for (int i = 0; i < 4; i++)
            Assert.Equal((float)Math.Pow(2, -0.5 - i), twelve[8 + i]);
        var span = new float[3];
        Positions.AlibiSlopes(span);
        Assert.Equal(new[] { 1f / 16, 1f / 256, 1f / 4 }, span); // n = 2: 2^-4, 2^-8, then 2^-2
    }

    [Fact]
    public void SinusoidalMatchesDefinition()
    {
        float[] table = Positions.SinusoidalPositions(50, 16);
        for (int p = 0; p < 50; p++)
            for (int i = 0; i < 8; i++)
            {
                double angle = p / Math.Pow(10000, 2.0 * i / 16);
                Assert.Equal((float)Math.Sin(angle), table[p * 16 + 2 * i]);
                Assert.Equal((float)Math.Cos(angle), table[p * 16 + 2 * i + 1]);
            }
        Assert.Empty(Positions.SinusoidalPositions(0, 16));
    }

    private static int HfBucket(int relative, bool bidirectional, int numBuckets, int maxDistance)
    {
        int buckets = 0;
        if (bidirectional)
        {
            numBuckets /= 2;
            buckets += relative > 0 ? numBuckets : 0;
            relative = Math.Abs(relative);
        }
        else
        {
            relative = -Math.Min(relative, 0);
        }
        int maxExact = numBuckets / 2;
        if (relative < maxExact)
            return buckets + relative;
        float large = MathF.Log((float)relative / maxExact) / (float)Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact);
        return buckets + Math.Min(maxExact + (int)large, numBuckets - 1);
    }

    [Theory]
    [InlineData(true, 32, 128)]
    [InlineData(false, 32, 128)]
    [InlineData(true, 64, 256)]
    [InlineData(false, 16, 40)]
    public void T5BucketsMatchHf(bool bidirectional, int numBuckets, int maxDistance)
    {
        const int q = 40, k = 300;
        var buckets = new int[q * k];
        Positions.T5RelativePositionBuckets(buckets, q, k, bidirectional, numBuckets, maxDistance, queryOffset: 7);
        for (int i = 0; i < q; i++)
            for (int j = 0; j < k; j++)
                Assert.Equal(HfBucket(j - (i + 7), bidirectional, numBuckets, maxDistance), buckets[i * k + j]);
    }

    [Fact]
    public void T5KnownBuckets()
    {
        // one query at offset -rel sees key 0 at relative distance rel
        int Bucket(int rel, bool bidirectional)
        {
            var b = new int[1];
            Positions.T5RelativePositionBuckets(b, 1, 1, bidirectional, queryOffset: -rel);
            return b[0];
        }
        Assert.Equal(0, Bucket(0, true));
        Assert.Equal(17, Bucket(1, true));
        Assert.Equal(1, Bucket(-1, true));
        Assert.Equal(24, Bucket(8, true));
        Assert.Equal(26, Bucket(16, true));
        Assert.Equal(28, Bucket(32, true));
        Assert.Equal(30, Bucket(64, true));
        Assert.Equal(31, Bucket(500, true));
        Assert.Equal(15, Bucket(-500, true));
        Assert.Equal(0, Bucket(5, false));
        Assert.Equal(16, Bucket(-16, false));
        Assert.Equal(21, Bucket(-32, false));
        Assert.Equal(31, Bucket(-128, false));
    }

    [Fact]
    public void T5BiasGathersTheTablePerHead()
    {
        const int heads = 4, buckets = 32, q = 3, k = 10;
        var table = new float[buckets * heads];
        for (int i = 0; i < table.Length; i++) table[i] = i * 0.25f;
        var bias = new float[heads * q * k];
        Positions.T5RelativePositionBias(table, bias, q, k, heads, bidirectional: false, queryOffset: k - q);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < q; i++)
                for (int j = 0; j < k; j++)
                    Assert.Equal(table[HfBucket(j - (i + k - q), false, buckets, 128) * heads + h], bias[(h * q + i) * k + j]);
    }
}
