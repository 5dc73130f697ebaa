namespace LlmKernels.Tests;

/// <summary>
/// Kernels.FusedAddRmsNorm over the same matrix as <see cref="RmsNormTests"/>. The header's contract:
/// the sum residual + x is rounded to T once and stored, and the statistics use that stored value;
/// so the residual must equal round_T(residual + x) (computed in float) exactly, and the output is
/// checked against float64 RMSNorm of that rounded sum. In place both ways (destination = x, and
/// destination = residual) equals out of place bit for bit.
/// </summary>
public sealed class FusedAddRmsNormTests
{
    public static TheoryData<CpuIsa, bool, bool> Cases => NormCases.IsaWeightOffset();

    [Theory, MemberData(nameof(Cases))]
    public void Float(CpuIsa isa, bool weightAsFloat, bool weightOffsetOne) => Check<float>(isa, weightAsFloat, weightOffsetOne);

    [Theory, MemberData(nameof(Cases))]
    public void Half(CpuIsa isa, bool weightAsFloat, bool weightOffsetOne) => Check<System.Half>(isa, weightAsFloat, weightOffsetOne);

    [Theory, MemberData(nameof(Cases))]
    public void BFloat16(CpuIsa isa, bool weightAsFloat, bool weightOffsetOne) => Check<LlmKernels.BFloat16>(isa, weightAsFloat, weightOffsetOne);

    private static void Check<T>(CpuIsa isa, bool weightAsFloat, bool weightOffsetOne) where T : unmanaged
    {
        using var oneThread = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 1 });
        using var twoThreads = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 2 });
        Assert.Equal(isa, oneThread.Isa);
        Assert.Equal(2, twoThreads.ThreadCount);
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, weightAsFloat, weightOffsetOne, "fused") & 0xffff);

        foreach (var (rows, hidden, threads) in NormCases.Shapes())
            Run<T>(threads == 1 ? oneThread : twoThreads, rows, hidden, weightAsFloat, weightOffsetOne, random);
    }

    /// <summary>One call on fresh random data, checked as the class summary says; <paramref name="destinationOffset"/>
    /// shifts the destination inside a larger buffer (another alignment).</summary>
    internal static void Run<T>(CpuContext context, int rows, int hidden, bool weightAsFloat, bool weightOffsetOne, Random random,
                                int destinationOffset = 0) where T : unmanaged
    {
        CpuIsa isa = context.Isa;
        string what = $"FusedAddRmsNorm<{typeof(T).Name}> {isa} weight {(weightAsFloat ? "f32" : typeof(T).Name)} " +
                      $"offsetOne={weightOffsetOne} [{rows} x {hidden}] threads={context.ThreadCount}" +
                      (destinationOffset != 0 ? $" destination at +{destinationOffset}" : "");
        T[] x = NormCases.Activations<T>(random, rows, hidden);
        T[] residualIn = NormCases.Activations<T>(random, rows, hidden);
        T[]? weightT = weightAsFloat ? null : NormCases.Weight<T>(random, hidden, weightOffsetOne);
        float[] weightF = weightT is null ? NormCases.Weight<float>(random, hidden, weightOffsetOne) : Element.ToFloats<T>(weightT);

        void Call(ReadOnlySpan<T> input, Span<T> residual, Span<T> destination)
        {
            if (weightT is null)
                Kernels.FusedAddRmsNorm(input, residual, weightF, destination, NormCases.Epsilon, weightOffsetOne, context);
            else
                Kernels.FusedAddRmsNorm(input, residual, weightT, destination, NormCases.Epsilon, weightOffsetOne, context);
        }

        var sum = new T[x.Length];
        for (int i = 0; i < x.Length; i++)
            sum[i] = Element.FromFloat<T>(Element.ToFloat(residualIn[i]) + Element.ToFloat(x[i]));

        T[] residual = (T[])residualIn.Clone();
        Span<T> y = NormCases.Poisoned<T>(destinationOffset + x.Length).AsSpan(destinationOffset);
        Call(x, residual, y);
        Tolerance.AssertBitwiseEqual<T>(sum, residual, what + " residual");
        float[] sumF = Element.ToFloats<T>(sum);
        Tolerance.AssertClose<T>(y, RmsNormReference.Float64(sumF, weightF, NormCases.Epsilon, weightOffsetOne),
                                 RmsNormReference.Naive<T>(sumF, weightF, NormCases.Epsilon, weightOffsetOne), what);

        T[] xInPlace = (T[])x.Clone();
        residual = (T[])residualIn.Clone();
        Call(xInPlace, residual, xInPlace);
        Tolerance.AssertBitwiseEqual<T>(sum, residual, what + " residual, destination = x");
        Tolerance.AssertBitwiseEqual<T>(y, xInPlace, what + " destination = x");

        residual = (T[])residualIn.Clone();
        Call(x, residual, residual);
        Tolerance.AssertBitwiseEqual<T>(y, residual, what + " destination = residual");
    }
}
