namespace LlmKernels.Tests;

/// <summary>Comparisons of a CUDA kernel's output with the CPU API's on the same inputs.</summary>
internal static class CudaCompare
{
    /// <summary>Every element of <paramref name="got"/> within <paramref name="ulps"/> ulps of <typeparamref name="T"/> at the CPU's
    /// value (at least 1e-3), plus <paramref name="atol"/>; NaN where the CPU has NaN.</summary>
    internal static void Close<T>(ReadOnlySpan<T> want, ReadOnlySpan<T> got, double ulps, double atol, string what) where T : unmanaged
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
        {
            float w = Element.ToFloat(want[i]), g = Element.ToFloat(got[i]);
            if (float.IsNaN(w) || float.IsInfinity(w))
            {
                Assert.True(w.Equals(g), $"{what}[{i}]: {g} against the CPU's {w}");
                continue;
            }
            double tolerance = ulps * Element.Ulp<T>(Math.Max(Math.Abs(w), 1e-3)) + atol;
            Assert.True(Math.Abs(g - w) <= tolerance, $"{what}[{i}]: {g} against the CPU's {w} (tolerance {tolerance})");
        }
    }

    /// <summary>The largest magnitude in <paramref name="values"/>.</summary>
    internal static double MaxAbs<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        double max = 0;
        foreach (T v in values)
            max = Math.Max(max, Math.Abs(Element.ToFloat(v)));
        return max;
    }

    internal static T[] Random<T>(int seed, int length, float low = -2f, float high = 2f) where T : unmanaged =>
        Element.Random<T>(new Random(seed), length, low, high);

    /// <summary>The parameter an ArgumentException (or a derived one) names.</summary>
    internal static void Named(string paramName, Action call)
    {
        var e = Assert.ThrowsAny<ArgumentException>(call);
        Assert.Equal(paramName, e.ParamName);
    }
}
