namespace LlmKernels.Tests;

/// <summary>
/// Kernels.RmsNorm on every ISA this CPU runs, for float, Half and BFloat16, weight as T and as f32,
/// with and without (1 + w): within FlashAttention's tolerance of float64 (see <see cref="Tolerance"/>),
/// every output written (the destination starts as NaN), and in place equal to out of place, bit for bit.
/// </summary>
public sealed class RmsNormTests
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
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, weightAsFloat, weightOffsetOne) & 0xffff);

        foreach (var (rows, hidden, threads) in NormCases.Shapes())
            Run<T>(threads == 1 ? oneThread : twoThreads, rows, hidden, weightAsFloat, weightOffsetOne, random);
    }

    /// <summary>One call on fresh random data, checked as the class summary says; <paramref name="destinationOffset"/>
    /// shifts the destination inside a larger buffer (another alignment).</summary>
    internal static void Run<T>(CpuContext context, int rows, int hidden, bool weightAsFloat, bool weightOffsetOne, Random random,
                                int destinationOffset = 0) where T : unmanaged
    {
        CpuIsa isa = context.Isa;
        string what = $"RmsNorm<{typeof(T).Name}> {isa} weight {(weightAsFloat ? "f32" : typeof(T).Name)} " +
                      $"offsetOne={weightOffsetOne} [{rows} x {hidden}] threads={context.ThreadCount}" +
                      (destinationOffset != 0 ? $" destination at +{destinationOffset}" : "");
        T[] x = NormCases.Activations<T>(random, rows, hidden);
        T[]? weightT = weightAsFloat ? null : NormCases.Weight<T>(random, hidden, weightOffsetOne);
        float[] weightF = weightT is null ? NormCases.Weight<float>(random, hidden, weightOffsetOne) : Element.ToFloats<T>(weightT);

        void Call(ReadOnlySpan<T> input, Span<T> destination)
        {
            if (weightT is null)
                Kernels.RmsNorm(input, weightF, destination, NormCases.Epsilon, weightOffsetOne, context);
            else
                Kernels.RmsNorm(input, weightT, destination, NormCases.Epsilon, weightOffsetOne, context);
        }

        Span<T> y = NormCases.Poisoned<T>(destinationOffset + x.Length).AsSpan(destinationOffset);
        Call(x, y);
        float[] xf = Element.ToFloats<T>(x);
        Tolerance.AssertClose<T>(y, RmsNormReference.Float64(xf, weightF, NormCases.Epsilon, weightOffsetOne),
                                 RmsNormReference.Naive<T>(xf, weightF, NormCases.Epsilon, weightOffsetOne), what);

        T[] inPlace = (T[])x.Clone();
        Call(inPlace, inPlace);
        Tolerance.AssertBitwiseEqual<T>(y, inPlace, what + " in place");
    }
}
