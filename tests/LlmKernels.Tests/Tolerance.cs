namespace LlmKernels.Tests;

/// <summary>
/// FlashAttention's rule: the kernel's max abs error against the float64 reference may be at most
/// twice the naive implementation's (same precision: f32 accumulation, output rounded to T), plus
/// a small atol for the cases where the naive error happens to be ~0 while a reordered sum is not:
/// <list type="bullet">
/// <item>f32: 1e-6 x the largest reference magnitude (about 8 ulps there);</item>
/// <item>Half and BFloat16: one ulp of T at the largest reference magnitude (an output that rounds
/// to the other neighbour, after an f32 result that differs from the naive one in its last bits).</item>
/// </list>
/// A NaN anywhere (the poison of an unwritten output, or a real NaN) fails.
/// </summary>
internal static class Tolerance
{
    internal static void AssertClose<T>(ReadOnlySpan<T> actual, double[] reference, float[] naive, string what) where T : unmanaged
    {
        Assert.Equal(reference.Length, actual.Length);
        double maxMagnitude = 0, naiveError = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxMagnitude = Math.Max(maxMagnitude, Math.Abs(reference[i]));
            naiveError = Math.Max(naiveError, Math.Abs(naive[i] - reference[i]));
        }
        double atol = typeof(T) == typeof(float) ? 1e-6 * maxMagnitude : Element.Ulp<T>(maxMagnitude);
        double bound = 2 * naiveError + atol;

        double kernelError = 0;
        int worst = -1;
        for (int i = 0; i < reference.Length; i++)
        {
            float value = Element.ToFloat(actual[i]);
            if (float.IsNaN(value))
                Assert.Fail($"{what}: element {i} is NaN (unwritten output?); reference {reference[i]:R}");
            double error = Math.Abs(value - reference[i]);
            if (error > kernelError)
            {
                kernelError = error;
                worst = i;
            }
        }
        if (kernelError > bound)
        {
            Assert.Fail($"{what}: max abs error {kernelError:R} at element {worst} (got {Element.ToFloat(actual[worst]):R}, " +
                        $"reference {reference[worst]:R}) exceeds 2 x naive {naiveError:R} + atol {atol:R}");
        }
    }

    /// <summary>Bit-for-bit equality, reporting the first difference.</summary>
    internal static void AssertBitwiseEqual<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, string what) where T : unmanaged
    {
        Assert.Equal(expected.Length, actual.Length);
        var expectedBytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(expected);
        var actualBytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(actual);
        if (expectedBytes.SequenceEqual(actualBytes))
            return;
        for (int i = 0; i < expected.Length; i++)
        {
            var e = System.Runtime.InteropServices.MemoryMarshal.AsBytes(expected.Slice(i, 1));
            var a = System.Runtime.InteropServices.MemoryMarshal.AsBytes(actual.Slice(i, 1));
            if (!e.SequenceEqual(a))
                Assert.Fail($"{what}: element {i} is {Element.ToFloat(actual[i]):R}, expected exactly {Element.ToFloat(expected[i]):R}");
        }
    }
}
