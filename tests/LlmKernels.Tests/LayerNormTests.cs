namespace LlmKernels.Tests;

/// <summary>
/// Kernels.LayerNorm and Kernels.FusedAddLayerNorm on every ISA this CPU runs x element type x weight as T or f32 x
/// with and without bias and the (1 + w) offset, against float64 (FlashAttention's rule, <see cref="Tolerance"/>).
/// In place equals out of place bit for bit; the fused form stores round_T(residual + x) exactly and equals an add
/// followed by LayerNorm bit for bit. Rows with a large mean (1000 + U(-1, 1)) keep full f32 accuracy.
/// </summary>
public sealed class LayerNormTests
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
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, weightAsFloat, weightOffsetOne, "layer") & 0xffff);
        foreach (var (rows, hidden, threads) in LayerNormReference.Shapes())
            foreach (bool withBias in new[] { true, false })
                Run<T>(threads == 1 ? oneThread : twoThreads, rows, hidden, weightAsFloat, weightOffsetOne, withBias, random);
    }

    private static void Run<T>(CpuContext context, int rows, int hidden, bool weightAsFloat, bool weightOffsetOne, bool withBias,
                               Random random) where T : unmanaged
    {
        string what = $"LayerNorm<{typeof(T).Name}> {context.Isa} weight {(weightAsFloat ? "f32" : typeof(T).Name)} " +
                      $"offsetOne={weightOffsetOne} bias={withBias} [{rows} x {hidden}] threads={context.ThreadCount}";
        T[] x = NormCases.Activations<T>(random, rows, hidden);
        T[] residualIn = NormCases.Activations<T>(random, rows, hidden);
        T[] weightT = NormCases.Weight<T>(random, hidden, weightOffsetOne);
        T[] biasT = withBias ? Element.Random<T>(random, hidden, -1f, 1f) : Array.Empty<T>();
        float[] weightF = Element.ToFloats<T>(weightT), biasF = Element.ToFloats<T>(biasT);

        void Plain(ReadOnlySpan<T> input, Span<T> destination)
        {
            if (weightAsFloat) Kernels.LayerNorm(input, weightF, biasF, destination, NormCases.Epsilon, weightOffsetOne, context);
            else Kernels.LayerNorm(input, weightT, biasT, destination, NormCases.Epsilon, weightOffsetOne, context);
        }
        void Fused(ReadOnlySpan<T> input, Span<T> residual, Span<T> destination)
        {
            if (weightAsFloat) Kernels.FusedAddLayerNorm(input, residual, weightF, biasF, destination, NormCases.Epsilon, weightOffsetOne, context);
            else Kernels.FusedAddLayerNorm(input, residual, weightT, biasT, destination, NormCases.Epsilon, weightOffsetOne, context);
        }

        float[] xF = Element.ToFloats<T>(x);
        T[] y = NormCases.Poisoned<T>(x.Length);
        Plain(x, y);
        Tolerance.AssertClose<T>(y, LayerNormReference.Float64(xF, hidden, weightF, withBias ? biasF : null, NormCases.Epsilon, weightOffsetOne),
                                 LayerNormReference.Naive<T>(xF, hidden, weightF, withBias ? biasF : null, NormCases.Epsilon, weightOffsetOne), what);
        T[] inPlace = (T[])x.Clone();
        Plain(inPlace, inPlace);
        Tolerance.AssertBitwiseEqual<T>(y, inPlace, what + " in place");

        // Pre-norm: the stored sum, and the output equals LayerNorm of it bit for bit.
        var sum = new T[x.Length];
        for (int i = 0; i < x.Length; i++)
            sum[i] = Element.FromFloat<T>(Element.ToFloat(residualIn[i]) + Element.ToFloat(x[i]));
        T[] residual = (T[])residualIn.Clone();
        T[] fused = NormCases.Poisoned<T>(x.Length);
        Fused(x, residual, fused);
        Tolerance.AssertBitwiseEqual<T>(sum, residual, what + " fused residual");
        T[] unfused = NormCases.Poisoned<T>(x.Length);
        Plain(sum, unfused);
        Tolerance.AssertBitwiseEqual<T>(unfused, fused, what + " fused = add then LayerNorm");
        residual = (T[])residualIn.Clone();
        Fused(x, residual, residual);
        Tolerance.AssertBitwiseEqual<T>(fused, residual, what + " fused, destination = residual");
        T[] xInPlace = (T[])x.Clone();
        residual = (T[])residualIn.Clone();
        Fused(xInPlace, residual, xInPlace);
        Tolerance.AssertBitwiseEqual<T>(fused, xInPlace, what + " fused, destination = x");
    }

    [Theory, MemberData(nameof(IsaCases))]
    public void WithoutWeightOrBias(CpuIsa isa)
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 1 });
        var random = new Random(17);
        foreach (int hidden in new[] { 1, 5, 16, 33, 257, 4096 })
        {
            float[] x = NormCases.Activations<float>(random, 3, hidden);
            var y = NormCases.Poisoned<float>(x.Length);
            Kernels.LayerNorm<float>(x, hidden, y, NormCases.Epsilon, context);
            Tolerance.AssertClose<float>(y, LayerNormReference.Float64(x, hidden, null, null, NormCases.Epsilon, false),
                                         LayerNormReference.Naive<float>(x, hidden, null, null, NormCases.Epsilon, false), $"no affine {hidden}");
            // Equal to a weight of ones and no bias, bit for bit.
            var ones = new float[hidden];
            ones.AsSpan().Fill(1f);
            var withOnes = new float[x.Length];
            Kernels.LayerNorm<float>(x, ones, ReadOnlySpan<float>.Empty, withOnes, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<float>(withOnes, y, $"no affine = weight of ones, {hidden}");
        }
    }

    public static TheoryData<CpuIsa> IsaCases()
    {
        var data = new TheoryData<CpuIsa>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            data.Add(isa);
        return data;
    }

    /// <summary>Rows of 1000 + U(-1, 1): the one-pass E[x²] - mean² would lose every bit of the variance in f32.</summary>
    [Theory, MemberData(nameof(IsaCases))]
    public void LargeMeanKeepsAccuracy(CpuIsa isa)
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 1 });
        var random = new Random(1000);
        const int hidden = 4096;
        var x = new float[4 * hidden];
        for (int i = 0; i < x.Length; i++)
            x[i] = 1000f + (float)(random.NextDouble() * 2 - 1);
        var y = new float[x.Length];
        Kernels.LayerNorm<float>(x, hidden, y, 1e-5f, context);
        double[] reference = LayerNormReference.Float64(x, hidden, null, null, 1e-5f, false);
        double worst = 0;
        for (int i = 0; i < y.Length; i++)
            worst = Math.Max(worst, Math.Abs(y[i] - reference[i]));
        Assert.True(worst < 2e-4, $"{isa}: max error {worst} on rows of 1000 + U(-1, 1)");
    }
}
