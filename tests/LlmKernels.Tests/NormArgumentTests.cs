namespace LlmKernels.Tests;

/// <summary>
/// Every bad input of the LayerNorm and residual-form APIs gets an exception naming the C# parameter, before anything
/// is written: mismatched lengths, empty weight, bias of another length, bad epsilon and alpha, the offset without a
/// weight, and every overlap the aliasing rules forbid. And what is allowed (no rows, in place, empty bias) just works.
/// </summary>
public sealed class NormArgumentTests
{
    private const int Hidden = 4;

    private static void Throws(string paramName, Action action)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(paramName, e.ParamName);
    }

    [Fact]
    public void LengthsNameTheirParameter()
    {
        Throws("weight", () => Kernels.LayerNorm<float>(new float[8], Array.Empty<float>(), Array.Empty<float>(), new float[8]));
        Throws("x", () => Kernels.LayerNorm<float>(new float[7], new float[Hidden], new float[Hidden], new float[7]));
        Throws("destination", () => Kernels.LayerNorm<float>(new float[8], new float[Hidden], new float[Hidden], new float[4]));
        Throws("bias", () => Kernels.LayerNorm<float>(new float[8], new float[Hidden], new float[Hidden - 1], new float[8]));
        Throws("bias", () => Kernels.LayerNorm<Half>(new Half[8], new float[Hidden], new float[Hidden + 1], new Half[8]));
        Throws("hidden", () => Kernels.LayerNorm<float>(new float[8], 0, new float[8]));
        Throws("hidden", () => Kernels.LayerNorm<float>(new float[8], -1, new float[8]));
        Throws("x", () => Kernels.LayerNorm<float>(new float[8], 3, new float[8]));
        Throws("residual", () => Kernels.FusedAddLayerNorm<float>(new float[8], new float[4], new float[Hidden], Array.Empty<float>(), new float[8]));
        Throws("residual", () => Kernels.PostLayerNorm<BFloat16>(new BFloat16[8], new BFloat16[12], new BFloat16[Hidden], Array.Empty<BFloat16>(), new BFloat16[8]));
        Throws("residual", () => Kernels.PostRmsNorm<float>(new float[8], Array.Empty<float>(), new float[Hidden], new float[8]));
        Throws("destination", () => Kernels.PostRmsNorm<float>(new float[8], new float[8], new float[Hidden], new float[9]));
        Throws("weight", () => Kernels.PostRmsNorm<float>(new float[8], new float[8], Array.Empty<float>(), new float[8]));
    }

    [Fact]
    public void ScalarsNameTheirParameter()
    {
        foreach (float epsilon in new[] { -1e-6f, float.NaN, float.PositiveInfinity })
        {
            Throws("epsilon", () => Kernels.LayerNorm<float>(new float[8], new float[Hidden], Array.Empty<float>(), new float[8], epsilon));
            Throws("epsilon", () => Kernels.FusedAddLayerNorm<float>(new float[8], new float[8], new float[Hidden], Array.Empty<float>(), new float[8], epsilon));
            Throws("epsilon", () => Kernels.PostRmsNorm<float>(new float[8], new float[8], new float[Hidden], new float[8], 1f, epsilon));
        }
        foreach (float alpha in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            Throws("alpha", () => Kernels.PostRmsNorm<float>(new float[8], new float[8], new float[Hidden], new float[8], alpha));
            Throws("alpha", () => Kernels.PostLayerNorm<Half>(new Half[8], new Half[8], new Half[Hidden], Array.Empty<Half>(), new Half[8], alpha));
        }
    }

    [Fact]
    public void OverlapsNameTheDestinationOrResidual()
    {
        var buffer = new float[3 * 8];
        var weight = new float[Hidden];
        // destination partly over x
        Throws("destination", () => Kernels.LayerNorm<float>(buffer.AsSpan(0, 8), weight, Array.Empty<float>(), buffer.AsSpan(1, 8)));
        // destination over weight or bias
        Throws("destination", () => Kernels.LayerNorm<float>(new float[Hidden], buffer.AsSpan(0, Hidden), Array.Empty<float>(), buffer.AsSpan(0, Hidden)));
        Throws("destination", () => Kernels.LayerNorm<float>(new float[Hidden], weight, buffer.AsSpan(2, Hidden), buffer.AsSpan(0, Hidden)));
        // pre-norm: residual may not touch x, weight or bias; destination may be residual but not partly
        Throws("residual", () => Kernels.FusedAddLayerNorm<float>(buffer.AsSpan(0, 8), buffer.AsSpan(4, 8), weight, Array.Empty<float>(), buffer.AsSpan(16, 8)));
        Throws("residual", () => Kernels.FusedAddLayerNorm<float>(new float[Hidden], buffer.AsSpan(0, Hidden), weight, buffer.AsSpan(2, Hidden), new float[Hidden]));
        Throws("destination", () => Kernels.FusedAddLayerNorm<float>(new float[8], buffer.AsSpan(0, 8), weight, Array.Empty<float>(), buffer.AsSpan(1, 8)));
        // post-norm: the residual is read only, so the destination may not be it at all
        Throws("destination", () => Kernels.PostLayerNorm<float>(new float[8], buffer.AsSpan(0, 8), weight, Array.Empty<float>(), buffer.AsSpan(0, 8)));
        Throws("destination", () => Kernels.PostRmsNorm<float>(new float[8], buffer.AsSpan(0, 8), weight, buffer.AsSpan(4, 8)));
    }

    [Fact]
    public void OffsetNeedsAWeight()
    {
        // Only reachable where a weight may be empty: the no-affine overload has no offset, so through the weighted ones with bias only.
        Throws("weight", () => Kernels.LayerNorm<float>(new float[8], Array.Empty<float>(), new float[Hidden], new float[8], weightOffsetOne: true));
    }

    [Fact]
    public void AllowedEdgesJustWork()
    {
        // no rows
        Kernels.LayerNorm<float>(Array.Empty<float>(), new float[Hidden], Array.Empty<float>(), Array.Empty<float>());
        Kernels.PostLayerNorm<Half>(Array.Empty<Half>(), Array.Empty<Half>(), new Half[Hidden], Array.Empty<Half>(), Array.Empty<Half>());
        Kernels.PostRmsNorm<float>(Array.Empty<float>(), Array.Empty<float>(), new float[Hidden], Array.Empty<float>(), alpha: 2f);
        // in place, epsilon 0 on non-constant rows, read-only inputs sharing memory (residual = x in post-norm)
        float[] x = [1f, 2f, 3f, 4f, -1f, 0f, 1f, 5f];
        float[] weight = [1f, 1f, 1f, 1f];
        Kernels.LayerNorm<float>(x, weight, weight, x, 0f);
        Assert.All(x, value => Assert.True(float.IsFinite(value)));
        float[] y = new float[8];
        Kernels.PostRmsNorm<float>(x, x, weight, y, 0.5f);
        Assert.All(y, value => Assert.True(float.IsFinite(value)));
        // an empty bias is no bias
        float[] a = new float[8], b = new float[8];
        Kernels.FusedAddLayerNorm<float>([1f, 2f, 3f, 4f, 5f, 6f, 7f, 9f], new float[8], weight, Array.Empty<float>(), a);
        Kernels.LayerNorm<float>([1f, 2f, 3f, 4f, 5f, 6f, 7f, 9f], weight, new float[Hidden], b);
        Assert.Equal(b, a);
    }
}
