namespace LlmKernels.Tests;

/// <summary>
/// The post-norm / DeepNorm forms, <see cref="Kernels.PostRmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, float, bool, CpuContext?)"/>
/// and <see cref="Kernels.PostLayerNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, float, bool, CpuContext?)"/>:
/// on every ISA x element type x alpha, the output equals the unfused sequence bit for bit (v = round_T(alpha * residual + x)
/// in f32, then the plain norm of v), is within FlashAttention's bound of float64, leaves the residual untouched, and runs
/// in place (destination = x). And the sandwich norm of Gemma 2/3 composes from the plain and pre-norm calls.
/// </summary>
public sealed class NormResidualFormTests
{
    public static TheoryData<CpuIsa, float> Cases()
    {
        var data = new TheoryData<CpuIsa, float>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            foreach (float alpha in new[] { 1f, 2.8284271f, 0.5f })
                data.Add(isa, alpha);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Float(CpuIsa isa, float alpha) => Check<float>(isa, alpha);

    [Theory, MemberData(nameof(Cases))]
    public void Half(CpuIsa isa, float alpha) => Check<System.Half>(isa, alpha);

    [Theory, MemberData(nameof(Cases))]
    public void BFloat16(CpuIsa isa, float alpha) => Check<LlmKernels.BFloat16>(isa, alpha);

    private static void Check<T>(CpuIsa isa, float alpha) where T : unmanaged
    {
        using var oneThread = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 1 });
        using var twoThreads = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 2 });
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, alpha) & 0xffff);
        foreach (var (rows, hidden, threads) in LayerNormReference.Shapes())
        {
            CpuContext context = threads == 1 ? oneThread : twoThreads;
            string what = $"<{typeof(T).Name}> {isa} alpha={alpha} [{rows} x {hidden}] threads={threads}";
            T[] x = NormCases.Activations<T>(random, rows, hidden);
            T[] residual = NormCases.Activations<T>(random, rows, hidden);
            T[] residualBefore = (T[])residual.Clone();
            T[] weight = NormCases.Weight<T>(random, hidden, false);
            float[] weightF = Element.ToFloats<T>(weight);
            T[] bias = Element.Random<T>(random, hidden, -1f, 1f);
            float[] biasF = Element.ToFloats<T>(bias);
            var v = new T[x.Length];
            for (int i = 0; i < x.Length; i++)
            {
                float scaled = alpha * Element.ToFloat(residual[i]);
                v[i] = Element.FromFloat<T>(scaled + Element.ToFloat(x[i]));
            }
            float[] vF = Element.ToFloats<T>(v);

            // RMSNorm
            T[] y = NormCases.Poisoned<T>(x.Length);
            Kernels.PostRmsNorm(x, residual, weight, y, alpha, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<T>(residualBefore, residual, "PostRmsNorm" + what + " residual untouched");
            T[] unfused = NormCases.Poisoned<T>(x.Length);
            Kernels.RmsNorm(v, weight, unfused, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<T>(unfused, y, "PostRmsNorm" + what + " = add then RmsNorm");
            Tolerance.AssertClose<T>(y, RmsNormReference.Float64(vF, weightF, NormCases.Epsilon, false),
                                     RmsNormReference.Naive<T>(vF, weightF, NormCases.Epsilon, false), "PostRmsNorm" + what);
            T[] inPlace = (T[])x.Clone();
            Kernels.PostRmsNorm(inPlace, residual, weightF, inPlace, alpha, NormCases.Epsilon, context: context);
            T[] unfusedF = new T[x.Length];
            Kernels.RmsNorm(v, weightF, unfusedF, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<T>(unfusedF, inPlace, "PostRmsNorm" + what + " f32 weight, destination = x");

            // LayerNorm
            y = NormCases.Poisoned<T>(x.Length);
            Kernels.PostLayerNorm(x, residual, weight, bias, y, alpha, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<T>(residualBefore, residual, "PostLayerNorm" + what + " residual untouched");
            unfused = NormCases.Poisoned<T>(x.Length);
            Kernels.LayerNorm(v, weight, bias, unfused, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<T>(unfused, y, "PostLayerNorm" + what + " = add then LayerNorm");
            Tolerance.AssertClose<T>(y, LayerNormReference.Float64(vF, hidden, weightF, biasF, NormCases.Epsilon, false),
                                     LayerNormReference.Naive<T>(vF, hidden, weightF, biasF, NormCases.Epsilon, false), "PostLayerNorm" + what);
            inPlace = (T[])x.Clone();
            Kernels.PostLayerNorm(inPlace, residual, weightF, biasF, inPlace, alpha, NormCases.Epsilon, context: context);
            Kernels.LayerNorm(v, weightF, biasF, unfusedF, NormCases.Epsilon, context: context);
            Tolerance.AssertBitwiseEqual<T>(unfusedF, inPlace, "PostLayerNorm" + what + " f32 weight, destination = x");
        }
    }

    /// <summary>alpha = 1 is plain post-norm; the default argument is that.</summary>
    [Fact]
    public void DefaultAlphaIsOne()
    {
        var random = new Random(5);
        float[] x = NormCases.Activations<float>(random, 2, 64), residual = NormCases.Activations<float>(random, 2, 64);
        float[] weight = NormCases.Weight<float>(random, 64, false);
        float[] a = new float[x.Length], b = new float[x.Length];
        Kernels.PostLayerNorm<float>(x, residual, weight, ReadOnlySpan<float>.Empty, a);
        Kernels.PostLayerNorm<float>(x, residual, weight, ReadOnlySpan<float>.Empty, b, alpha: 1f);
        Tolerance.AssertBitwiseEqual<float>(a, b, "default alpha");
        var sum = new float[x.Length];
        for (int i = 0; i < x.Length; i++) sum[i] = residual[i] + x[i];
        Kernels.LayerNorm<float>(sum, weight, ReadOnlySpan<float>.Empty, b);
        Tolerance.AssertBitwiseEqual<float>(b, a, "post-norm = LayerNorm(residual + x)");
    }

    /// <summary>
    /// Gemma 2/3's sandwich norm, <c>residual += norm2(x); y = norm1(residual)</c>: RmsNorm with norm2's weight into a
    /// scratch row, then FusedAddRmsNorm with norm1's. Checked against the same steps in float64 with the roundings to T.
    /// </summary>
    [Fact]
    public void SandwichNormComposes()
    {
        var random = new Random(23);
        const int rows = 3, hidden = 96;
        BFloat16[] x = NormCases.Activations<BFloat16>(random, rows, hidden);
        BFloat16[] residual = NormCases.Activations<BFloat16>(random, rows, hidden);
        float[] residualIn = Element.ToFloats<BFloat16>(residual);
        BFloat16[] postNormWeight = NormCases.Weight<BFloat16>(random, hidden, true);
        BFloat16[] preNormWeight = NormCases.Weight<BFloat16>(random, hidden, true);

        var normed = new BFloat16[x.Length];
        var y = new BFloat16[x.Length];
        Kernels.RmsNorm(x, postNormWeight, normed, NormCases.Epsilon, weightOffsetOne: true);
        Kernels.FusedAddRmsNorm(normed, residual, preNormWeight, y, NormCases.Epsilon, weightOffsetOne: true);

        float[] normedF = Element.ToFloats<BFloat16>(normed);
        var expectedResidual = new BFloat16[x.Length];
        for (int i = 0; i < x.Length; i++)
            expectedResidual[i] = Element.FromFloat<BFloat16>(residualIn[i] + normedF[i]);
        Tolerance.AssertBitwiseEqual<BFloat16>(expectedResidual, residual, "sandwich residual");
        float[] sumF = Element.ToFloats<BFloat16>(expectedResidual);
        float[] w1 = Element.ToFloats<BFloat16>(preNormWeight);
        Tolerance.AssertClose<BFloat16>(y, RmsNormReference.Float64(sumF, w1, NormCases.Epsilon, true),
                                        RmsNormReference.Naive<BFloat16>(sumF, w1, NormCases.Epsilon, true), "sandwich y");
    }
}
