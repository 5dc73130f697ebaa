using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels.Tests;

/// <summary>
/// Moe.Gating on every ISA this CPU runs, for float, Half and BFloat16 logits, against a float64 reference of the header's
/// contract (<see cref="MoeReference"/>): each scheme with and without renormalisation, routed scaling and a correction bias;
/// grouped selection (DeepSeek-V3's 8 of 256 in 4 of 8 groups, DeepSeek-V2's, every group kept, one kept, groups of one);
/// expert counts that are not powers of two; k = 1 and k = E; strided logits whose padding is NaN (never read); ties, NaN and
/// infinities; an empty batch; threads; the tensor overload. The ids must be exactly the reference's and the weights within
/// 1e-5 relative (f32 arithmetic against float64). Random tokens whose choice would hinge on a
/// difference f32 cannot resolve are drawn again (<see cref="MoeReference.Token"/>'s <c>clear</c>), so the ids are decided.
/// </summary>
public sealed class MoeGatingTests
{
    private static readonly MoeScoring[] s_schemes = [MoeScoring.SoftmaxTopK, MoeScoring.TopKSoftmax, MoeScoring.Sigmoid];

    public static TheoryData<CpuIsa, MoeScoring> Cases()
    {
        var data = new TheoryData<CpuIsa, MoeScoring>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            foreach (MoeScoring scoring in s_schemes)
                data.Add(isa, scoring);
        return data;
    }

    public static TheoryData<CpuIsa> Isas()
    {
        var data = new TheoryData<CpuIsa>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            data.Add(isa);
        return data;
    }

    private static CpuContext On(CpuIsa isa, int threads = 2) => new(new CpuContextOptions { Isa = isa, ThreadCount = threads });

    private static int Seed<T>(CpuIsa isa, int salt) where T : unmanaged => (int)isa * 1000 + salt * 100 + Element.MantissaBits<T>();

    [Theory, MemberData(nameof(Cases))]
    public void Float(CpuIsa isa, MoeScoring scoring) => Check<float>(isa, scoring);

    [Theory, MemberData(nameof(Cases))]
    public void Half(CpuIsa isa, MoeScoring scoring) => Check<System.Half>(isa, scoring);

    [Theory, MemberData(nameof(Cases))]
    public void BFloat16(CpuIsa isa, MoeScoring scoring) => Check<LlmKernels.BFloat16>(isa, scoring);

    // (experts, k, tokens, padding after each token's logits): Mixtral 2 of 8, Qwen1.5-MoE 4 of 60, DeepSeek-V2 6 of 160, OLMoE 8 of
    // 64, Qwen3 8 of 128, 8 of 256, one expert, k = E, k = 1, and an odd count.
    private static readonly (int Experts, int K, int Tokens, int Pad)[] s_shapes =
    [
        (8, 2, 300, 0), (60, 4, 37, 3), (160, 6, 9, 0), (64, 8, 17, 5), (128, 8, 5, 0), (256, 8, 3, 1), (1, 1, 3, 0), (5, 5, 4, 2),
        (32, 32, 4, 0), (256, 1, 2, 0), (7, 3, 11, 1), (384, 8, 2, 0),
    ];

    private static IEnumerable<(MoeGatingOptions Options, bool Bias)> Variants(MoeScoring scoring)
    {
        yield return (new MoeGatingOptions { Scoring = scoring }, false);
        yield return (new MoeGatingOptions { Scoring = scoring, Renormalize = true }, false);
        yield return (new MoeGatingOptions { Scoring = scoring, RoutedScalingFactor = 2.5f }, false);
        yield return (new MoeGatingOptions { Scoring = scoring }, true);
        yield return (new MoeGatingOptions { Scoring = scoring, Renormalize = true, RoutedScalingFactor = 16f }, true);
    }

    private static void Check<T>(CpuIsa isa, MoeScoring scoring) where T : unmanaged
    {
        using var context = On(isa);
        var random = new Random(Seed<T>(isa, (int)scoring));
        foreach (var (experts, k, tokens, pad) in s_shapes)
            foreach (var (options, withBias) in Variants(scoring))
            {
                float[]? bias = withBias ? RandomBias(random, experts) : null;
                Run<T>(context, random, tokens, experts, k, pad, options, bias);
            }
    }

    /// <summary>A correction bias large enough to change the choice: uniform in [-0.3, 0.3].</summary>
    private static float[] RandomBias(Random random, int experts)
    {
        var bias = new float[experts];
        for (int e = 0; e < experts; e++)
            bias[e] = 0.6f * random.NextSingle() - 0.3f;
        return bias;
    }

    /// <summary>
    /// One call over <paramref name="tokens"/> random tokens (logits uniform in [-4, 4], rounded to <typeparamref name="T"/>) laid out
    /// <c>experts + pad</c> apart with NaN in the padding and the span ending at the last token's logits; outputs with three poisoned
    /// elements after them. Checks every token against the reference and the poison unchanged; returns the outputs.
    /// </summary>
    private static (float[] Weights, int[] Ids) Run<T>(CpuContext context, Random random, int tokens, int experts, int k, int pad,
                                                      MoeGatingOptions options, float[]? bias) where T : unmanaged
    {
        int stride = experts + pad;
        string what = $"Gating<{typeof(T).Name}> {context.Isa} {options.Scoring} E {experts} k {k} tokens {tokens} pad {pad} " +
                      $"renorm {options.Renormalize} scale {options.RoutedScalingFactor} groups {options.NumGroups}/{options.TopKGroups} " +
                      $"bias {bias is not null}";
        T[] logits = new T[tokens == 0 ? 0 : (tokens - 1) * stride + experts];
        logits.AsSpan().Fill(Element.NaN<T>());
        var expected = new MoeReference.Result[tokens];
        for (int t = 0; t < tokens; t++)
        {
            for (int tries = 0; ; tries++)
            {
                T[] row = Element.Random<T>(random, experts, -4f, 4f);
                expected[t] = MoeReference.Token(Doubles(row), bias, k, options, out bool clear);
                if (clear)
                {
                    row.CopyTo(logits, t * stride);
                    break;
                }
                if (tries == 100)
                    Assert.Fail($"{what}: no token with a clear choice in 100 draws");
            }
        }
        float[] weights = Poisoned.Filled(tokens * k + 3);
        int[] ids = new int[tokens * k + 3];
        ids.AsSpan().Fill(-7);
        Moe.Gating<T>(logits, weights, ids, tokens, experts, k, options, bias, pad == 0 ? 0 : stride, context);
        for (int t = 0; t < tokens; t++)
            AssertToken(what, t, weights.AsSpan(t * k, k), ids.AsSpan(t * k, k), expected[t], logits.AsSpan(t * stride, experts));
        Poisoned.Unchanged(weights[(tokens * k)..], $"{what}: weights past numTokens x topK");
        Assert.All(ids[(tokens * k)..], id => Assert.Equal(-7, id));
        return (weights, ids);
    }

    private static double[] Doubles<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = Element.ToFloat(values[i]);
        return result;
    }

    /// <summary>The ids exactly, the weights within 1e-5 relative (plus 1e-9), NaN where the reference has NaN.</summary>
    private static void AssertToken<T>(string what, int t, ReadOnlySpan<float> weights, ReadOnlySpan<int> ids, MoeReference.Result expected,
                                       ReadOnlySpan<T> logits) where T : unmanaged
    {
        int[] idValues = ids.ToArray();
        float[] weightValues = weights.ToArray(), logitValues = Element.ToFloats(logits);
        string Detail() => $"{what} token {t}: ids [{string.Join(", ", idValues)}] weights [{string.Join(", ", weightValues)}], " +
                           $"expected [{string.Join(", ", expected.Ids)}] [{string.Join(", ", expected.Weights)}]" +
                           (logitValues.Length <= 64 ? $"; logits [{string.Join(", ", logitValues)}]" : "");
        for (int j = 0; j < ids.Length; j++)
        {
            if (ids[j] != expected.Ids[j])
                Assert.Fail($"ids[{j}] differs: {Detail()}");
            double r = expected.Weights[j], w = weights[j];
            bool ok = double.IsNaN(r) ? double.IsNaN(w) : Math.Abs(w - r) <= 1e-5 * Math.Abs(r) + 1e-9;
            if (!ok)
                Assert.Fail($"weights[{j}] differs: {Detail()}");
        }
    }

    // ---- grouped selection ----------------------------------------------------------------------

    [Theory, MemberData(nameof(Isas))]
    public void Grouped(CpuIsa isa)
    {
        CheckGrouped<float>(isa);
        CheckGrouped<System.Half>(isa);
        CheckGrouped<LlmKernels.BFloat16>(isa);
    }

    private static void CheckGrouped<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = On(isa);
        var random = new Random(Seed<T>(isa, 7));
        // DeepSeek-V3: sigmoid, 8 of 256 experts in the 4 best of 8 groups (by the sum of each group's two best biased scores),
        // renormalised, x 2.5.
        var v3 = new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, Renormalize = true, NumGroups = 8, TopKGroups = 4, RoutedScalingFactor = 2.5f };
        float[] bias = RandomBias(random, 256);
        Run<T>(context, random, 64, 256, 8, 0, v3, bias);
        Run<T>(context, random, 5, 256, 8, 3, v3, bias);
        // Every group kept: the plain top k (the same logits, drawn from the same seed).
        var (_, ids1) = Run<T>(context, new Random(5), 16, 256, 8, 0, v3 with { TopKGroups = 8 }, bias);
        var (_, ids2) = Run<T>(context, new Random(5), 16, 256, 8, 0, v3 with { NumGroups = 0, TopKGroups = 0 }, bias);
        Assert.Equal(ids2, ids1);
        // One group kept: every id in one group of 32.
        var (_, one) = Run<T>(context, random, 16, 256, 8, 0, v3 with { TopKGroups = 1 }, bias);
        for (int t = 0; t < 16; t++)
            Assert.Single(one.AsSpan(t * 8, 8).ToArray().Select(id => id / 32).Distinct());
        // As many experts as the kept groups hold.
        Run<T>(context, random, 4, 64, 16, 0, v3 with { NumGroups = 8, TopKGroups = 2, RoutedScalingFactor = 0 }, bias[..64]);
        // DeepSeek-V2: softmax, 6 of 160 in the 3 best of 8 groups by each group's best score, x 16, not renormalised.
        var v2 = new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK, NumGroups = 8, TopKGroups = 3, RoutedScalingFactor = 16f };
        Run<T>(context, random, 33, 160, 6, 2, v2, null);
        Run<T>(context, random, 9, 160, 6, 0, v2, RandomBias(random, 160));
        // Any scheme groups; groups of one expert (whose two best are that one); 60 experts in 4 groups.
        Run<T>(context, random, 9, 64, 4, 0, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax, NumGroups = 4, TopKGroups = 2 }, null);
        Run<T>(context, random, 9, 64, 4, 0, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax, NumGroups = 4, TopKGroups = 2 },
               RandomBias(random, 64));
        Run<T>(context, random, 9, 8, 2, 0, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, NumGroups = 8, TopKGroups = 3 },
               RandomBias(random, 8));
        Run<T>(context, random, 9, 8, 3, 0, new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK, NumGroups = 8, TopKGroups = 3 }, null);
        Run<T>(context, random, 9, 60, 5, 1, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, NumGroups = 4, TopKGroups = 3, Renormalize = true },
               RandomBias(random, 60));
        // NumGroups 1 is no grouping, whatever TopKGroups says.
        Run<T>(context, random, 9, 60, 5, 0, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, NumGroups = 1, TopKGroups = 7 }, null);
    }

    // ---- exact cases: ties, the bias, non-finite logits -------------------------------------------------

    /// <summary>Runs one token of float logits on every ISA; returns each ISA's (weights, ids), the ids all the same (the weights may
    /// differ in their last bits: each is checked on its own).</summary>
    private static (float[] Weights, int[] Ids)[] One(float[] logits, int k, MoeGatingOptions options, float[]? bias = null)
    {
        var results = new List<(float[], int[])>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
        {
            using var context = On(isa, 1);
            float[] weights = new float[k];
            int[] ids = new int[k];
            Moe.Gating<float>(logits, weights, ids, 1, logits.Length, k, options, bias, context: context);
            if (results.Count > 0)
                Assert.True(results[0].Item2.SequenceEqual(ids), $"{isa}: ids [{string.Join(", ", ids)}], {CpuContext.SupportedIsas[0]}: [{string.Join(", ", results[0].Item2)}]");
            results.Add((weights, ids));
        }
        return results.ToArray();
    }

    private static int[] Ids((float[] Weights, int[] Ids)[] results) => results[0].Ids;

    [Fact]
    public void EqualLogitsGiveTheLowestIdsAscending()
    {
        foreach (MoeScoring scoring in s_schemes)
            foreach (int experts in new[] { 8, 60, 256 })
                foreach (int k in new[] { 1, 3, Math.Min(experts, 32) })
                {
                    AllEqual<float>(scoring, experts, k);
                    AllEqual<System.Half>(scoring, experts, k);
                    AllEqual<LlmKernels.BFloat16>(scoring, experts, k);
                }
    }

    private static void AllEqual<T>(MoeScoring scoring, int experts, int k) where T : unmanaged
    {
        T[] logits = new T[3 * experts];
        logits.AsSpan().Fill(Element.FromFloat<T>(0.5f));
        float expected = scoring switch
        {
            MoeScoring.SoftmaxTopK => 1f / experts,
            MoeScoring.TopKSoftmax => 1f / k,
            _ => (float)(1 / (1 + Math.Exp(-0.5))),
        };
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
        {
            using var context = On(isa);
            float[] weights = new float[3 * k];
            int[] ids = new int[3 * k];
            Moe.Gating<T>(logits, weights, ids, 3, experts, k, new MoeGatingOptions { Scoring = scoring }, context: context);
            string what = $"{scoring} {typeof(T).Name} {isa} E {experts} k {k}";
            for (int i = 0; i < 3 * k; i++)
            {
                Assert.True(ids[i] == i % k, $"{what}: ids [{string.Join(", ", ids)}]");
                Assert.True(Math.Abs(weights[i] - expected) <= 1e-6 * expected, $"{what}: weight {weights[i]}, expected {expected}");
            }
        }
    }

    [Fact]
    public void PartialTiesGoToTheLowerId()
    {
        float[] logits = [1, 3, 3, 0, 3, 3, -2, 3];
        foreach (MoeScoring scoring in s_schemes)
        {
            Assert.Equal([1, 2, 4], Ids(One(logits, 3, new MoeGatingOptions { Scoring = scoring })));
            Assert.Equal([1, 2, 4, 5, 7, 0, 3, 6], Ids(One(logits, 8, new MoeGatingOptions { Scoring = scoring })));
        }
        // Grouped: groups {0,1} {2,3} {4,5} {6,7} score 3, 3, 3, 3 (best one): the two lower groups are kept.
        Assert.Equal([1, 2, 0], Ids(One(logits, 3, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax, NumGroups = 4, TopKGroups = 2 })));
    }

    /// <summary>The bias chooses but does not weigh: equal logits, a bias rising with the id. The four highest ids are chosen
    /// (15 first), and their equal weights come out with the lower id first.</summary>
    [Fact]
    public void WeightOrderTiesGoToTheLowerIdWhateverTheSelectionOrder()
    {
        float[] logits = new float[16], bias = new float[16];
        for (int e = 0; e < 16; e++)
            bias[e] = 0.01f * e;
        AssertWeights(One(logits, 4, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }, bias), [12, 13, 14, 15], [0.5, 0.5, 0.5, 0.5]);
        AssertWeights(One(logits, 4, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, Renormalize = true, RoutedScalingFactor = 2.5f }, bias),
                      [12, 13, 14, 15], [0.625, 0.625, 0.625, 0.625]);
    }

    /// <summary>A large bias on expert 3 chooses it in every scheme; its weight is what the scheme gives without the bias.</summary>
    [Fact]
    public void CorrectionBiasOnlyChooses()
    {
        float[] logits = [2, 1, 0, -1], bias = [0, 0, 0, 10];
        static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
        double sum = Math.Exp(2) + Math.Exp(1) + Math.Exp(0) + Math.Exp(-1);
        AssertWeights(One(logits, 2, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }, bias), [0, 3], [Sigmoid(2), Sigmoid(-1)]);
        AssertWeights(One(logits, 2, new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK }, bias), [0, 3], [Math.Exp(2) / sum, Math.Exp(-1) / sum]);
        AssertWeights(One(logits, 2, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax }, bias), [0, 3],
                      [Math.Exp(3) / (Math.Exp(3) + 1), 1 / (Math.Exp(3) + 1)]);
        // Renormalised and scaled: w / sum(w) * 2.5, from the unbiased scores.
        double s2 = Sigmoid(2), s1 = Sigmoid(-1);
        AssertWeights(One(logits, 2, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, Renormalize = true, RoutedScalingFactor = 2.5f }, bias),
                      [0, 3], [2.5 * s2 / (s2 + s1), 2.5 * s1 / (s2 + s1)]);
        // Without the bias, experts 0 and 1.
        AssertWeights(One(logits, 2, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }), [0, 1], [Sigmoid(2), Sigmoid(1)]);
    }

    /// <summary>Every ISA's ids exactly, and its weights within 1e-6 relative (0 exactly, NaN as NaN).</summary>
    private static void AssertWeights((float[] Weights, int[] Ids)[] results, int[] ids, double[] weights)
    {
        foreach (var actual in results)
        {
            Assert.Equal(ids, actual.Ids);
            for (int j = 0; j < weights.Length; j++)
                Assert.True(double.IsNaN(weights[j]) ? float.IsNaN(actual.Weights[j]) : Math.Abs(actual.Weights[j] - weights[j]) <= 1e-6 * Math.Abs(weights[j]) + 1e-30,
                            $"weights [{string.Join(", ", actual.Weights)}], expected [{string.Join(", ", weights)}]");
        }
    }

    [Fact]
    public void NaNRanksBelowMinusInfinity()
    {
        static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
        float nan = float.NaN, inf = float.PositiveInfinity;
        // Never chosen while numbers remain, -inf included.
        AssertWeights(One([nan, 1, 2, 3], 2, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax }), [3, 2],
                      [Math.E / (Math.E + 1), 1 / (Math.E + 1)]);
        AssertWeights(One([nan, -inf, 2, 3], 3, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax }), [3, 2, 1],
                      [Math.E / (Math.E + 1), 1 / (Math.E + 1), 0]);
        AssertWeights(One([nan, 1, 2, 3], 3, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }), [3, 2, 1], [Sigmoid(3), Sigmoid(2), Sigmoid(1)]);
        AssertWeights(One([nan, 1, -inf, 3], 3, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }), [3, 1, 2], [Sigmoid(3), Sigmoid(1), 0]);
        // Chosen last when k needs it; a NaN weight ranks last in the output too.
        AssertWeights(One([nan, 1, 2, 3], 4, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }), [3, 2, 1, 0],
                      [Sigmoid(3), Sigmoid(2), Sigmoid(1), double.NaN]);
        // A NaN among the k makes the k softmax weights NaN: all tied, lower ids first.
        AssertWeights(One([nan, 1, 2, 3], 4, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax }), [0, 1, 2, 3],
                      [double.NaN, double.NaN, double.NaN, double.NaN]);
        // A NaN bias ranks its expert last too.
        AssertWeights(One([3, 2, 1, 0], 2, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }, [nan, 0, 0, 0]), [1, 2], [Sigmoid(2), Sigmoid(1)]);
    }

    /// <summary>
    /// A NaN logit makes every softmax <c>p</c> of its token NaN. Without a bias experts rank by their logits (the order of
    /// <c>p</c>, exactly), NaN last: 3 and 2 are chosen, and their NaN weights tie, so the lower id comes first. With a bias
    /// they rank by <c>p + bias</c>, all NaN: every expert ties and the lowest ids win.
    /// </summary>
    [Fact]
    public void SoftmaxTopKNaNLogitRanksByLogitWithoutBiasAndTiesWithOne()
    {
        AssertWeights(One([1, float.NaN, 2, 3], 2, new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK }), [2, 3], [double.NaN, double.NaN]);
        AssertWeights(One([1, float.NaN, 2, 3], 2, new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK }, [0, 0, 0, 0]), [0, 1],
                      [double.NaN, double.NaN]);
    }

    [Fact]
    public void InfiniteLogitsGiveWhatTheFormulasGive()
    {
        float inf = float.PositiveInfinity;
        // Sigmoid maps +inf to 1 and -inf to 0.
        AssertWeights(One([inf, -inf, 0], 3, new MoeGatingOptions { Scoring = MoeScoring.Sigmoid }), [0, 2, 1], [1, 0.5, 0]);
        // -inf is a probability of 0 in a softmax.
        AssertWeights(One([-inf, 0, -inf, 0], 3, new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK }), [1, 3, 0], [0.5, 0.5, 0]);
        // +inf makes softmax NaN; the ids stay k distinct values in range.
        foreach (var scoring in new[] { MoeScoring.SoftmaxTopK, MoeScoring.TopKSoftmax })
        {
            foreach (var (weights, ids) in One([0, inf, 1, 2], 2, new MoeGatingOptions { Scoring = scoring }))
            {
                Assert.All(weights, w => Assert.True(float.IsNaN(w)));
                Assert.Equal(2, ids.Distinct().Count());
                Assert.All(ids, id => Assert.InRange(id, 0, 3));
            }
        }
    }

    // ---- sizes, threads, the empty batch, the tensor overload ----------------------------------------

    [Fact]
    public void KOfOneAndKOfAll()
    {
        using var context = On(CpuIsa.Auto);
        var random = new Random(41);
        foreach (MoeScoring scoring in s_schemes)
            foreach (int experts in new[] { 1, 2, 3, 17, 31, 32 })
            {
                Run<float>(context, random, 6, experts, 1, 0, new MoeGatingOptions { Scoring = scoring }, null);
                Run<float>(context, random, 6, experts, experts, 1, new MoeGatingOptions { Scoring = scoring, Renormalize = true }, RandomBias(random, experts));
                // k = E with renormalisation: the weights sum to 1 (the softmax itself for the softmax schemes).
                var (weights, ids) = Run<System.Half>(context, random, 2, experts, experts, 0,
                                                      new MoeGatingOptions { Scoring = scoring, Renormalize = true }, null);
                for (int t = 0; t < 2; t++)
                {
                    Assert.Equal(Enumerable.Range(0, experts), ids.AsSpan(t * experts, experts).ToArray().Order());
                    Assert.Equal(1.0, weights.AsSpan(t * experts, experts).ToArray().Sum(w => (double)w), 5);
                }
            }
    }

    [Fact]
    public void ThreadsDoNotChangeTheResult()
    {
        var random = new Random(43);
        const int tokens = 3000, experts = 256, k = 8;
        float[] logits = Element.Random<float>(random, tokens * experts, -4, 4), bias = RandomBias(random, experts);
        var options = new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, Renormalize = true, NumGroups = 8, TopKGroups = 4, RoutedScalingFactor = 2.5f };
        float[] w1 = new float[tokens * k], w4 = new float[tokens * k];
        int[] ids1 = new int[tokens * k], ids4 = new int[tokens * k];
        using (var one = On(CpuIsa.Auto, 1))
            Moe.Gating<float>(logits, w1, ids1, tokens, experts, k, options, bias, context: one);
        using (var four = On(CpuIsa.Auto, 4))
            Moe.Gating<float>(logits, w4, ids4, tokens, experts, k, options, bias, context: four);
        Assert.Equal(ids1, ids4);
        Assert.Equal(w1, w4);
        // And the default context.
        float[] wd = new float[tokens * k];
        int[] idsd = new int[tokens * k];
        Moe.Gating<float>(logits, wd, idsd, tokens, experts, k, options, bias);
        Assert.Equal(ids1, idsd);
        Assert.Equal(w1, wd);
    }

    [Fact]
    public void EmptyBatchDoesNothing()
    {
        foreach (MoeScoring scoring in s_schemes)
        {
            var options = new MoeGatingOptions { Scoring = scoring, Renormalize = true, NumGroups = 4, TopKGroups = 2, RoutedScalingFactor = 2 };
            Moe.Gating<float>(ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<int>.Empty, 0, 16, 4, options);
            Moe.Gating<System.Half>(ReadOnlySpan<System.Half>.Empty, Span<float>.Empty, Span<int>.Empty, 0, 16, 4, options, new float[16], 20);
            float[] weights = Poisoned.Filled(8);
            int[] ids = [9, 9, 9, 9, 9, 9, 9, 9];
            Moe.Gating<LlmKernels.BFloat16>(new LlmKernels.BFloat16[16], weights, ids, 0, 16, 4, options);
            Poisoned.Unchanged(weights, "weights of an empty batch");
            Assert.All(ids, id => Assert.Equal(9, id));
            Moe.Gating<float>(new ReadOnlyTensorSpan<float>(Array.Empty<float>(), [0, 16]), new TensorSpan<float>(Array.Empty<float>(), [0, 4]),
                              new TensorSpan<int>(Array.Empty<int>(), [0, 4]), options);
        }
    }

    [Fact]
    public void TensorOverloadEqualsSpanOverload()
    {
        TensorEqualsSpan<float>();
        TensorEqualsSpan<System.Half>();
        TensorEqualsSpan<LlmKernels.BFloat16>();
    }

    private static void TensorEqualsSpan<T>() where T : unmanaged
    {
        var random = new Random(47);
        const int tokens = 13, experts = 60, stride = 64, k = 4;
        T[] buffer = Element.Random<T>(random, tokens * stride, -4, 4);
        float[] bias = RandomBias(random, experts);
        var options = new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, Renormalize = true, NumGroups = 4, TopKGroups = 2 };
        float[] spanWeights = new float[tokens * k], tensorWeights = new float[tokens * k];
        int[] spanIds = new int[tokens * k], tensorIds = new int[tokens * k];
        Moe.Gating<T>(buffer, spanWeights, spanIds, tokens, experts, k, options, bias, stride);
        // A [tokens, experts] view of the wider buffer.
        Moe.Gating<T>(new ReadOnlyTensorSpan<T>(buffer, 0, [tokens, experts], [stride, 1]), new TensorSpan<float>(tensorWeights, [tokens, k]),
                      new TensorSpan<int>(tensorIds, [tokens, k]), options, bias);
        Assert.Equal(spanIds, tensorIds);
        Assert.Equal(spanWeights, tensorWeights);
        // One token: a dimension of length 1 has stride 0.
        float[] oneWeights = new float[k];
        int[] oneIds = new int[k];
        Moe.Gating<T>(new ReadOnlyTensorSpan<T>(buffer, 2 * stride, [1, experts], [0, 1]), new TensorSpan<float>(oneWeights, [1, k]),
                      new TensorSpan<int>(oneIds, [1, k]), options, bias);
        Assert.Equal(spanIds[(2 * k)..(3 * k)], oneIds);
        Assert.Equal(spanWeights[(2 * k)..(3 * k)], oneWeights);
    }

    // ---- bad arguments ----------------------------------------------------------------------------------

    private const int E = 16, K = 4, Tokens = 3;
    private static readonly float[] s_logits = Enumerable.Range(0, Tokens * E).Select(i => MathF.Sin(i)).ToArray();

    private delegate void Call(Span<float> weights, Span<int> expertIds);

    /// <summary>Runs <paramref name="call"/> on poisoned outputs and asserts an <see cref="ArgumentException"/> (or a subclass) naming
    /// <paramref name="paramName"/>, with nothing written.</summary>
    private static void Throws(string paramName, Call call)
    {
        float[] weights = Poisoned.Filled(Tokens * K);
        int[] ids = new int[Tokens * K];
        ids.AsSpan().Fill(-7);
        var e = Assert.ThrowsAny<ArgumentException>(() => call(weights, ids));
        Assert.Equal(paramName, e.ParamName);
        Poisoned.Unchanged(weights, "weights");
        Assert.All(ids, id => Assert.Equal(-7, id));
    }

    [Fact]
    public void ValidSmallCallWorks()
    {
        float[] weights = new float[Tokens * K];
        int[] ids = new int[Tokens * K];
        Moe.Gating<float>(s_logits, weights, ids, Tokens, E, K);
        Assert.All(ids, id => Assert.InRange(id, 0, E - 1));
        Assert.All(weights, w => Assert.True(w > 0 && w < 1));
        // Outputs and logits longer than needed are fine.
        Moe.Gating<float>(s_logits, new float[100], new int[100], 2, E, K, logitsStride: E + 5);
    }

    [Fact]
    public void BadSizesNameThem()
    {
        Throws("numTokens", (w, i) => Moe.Gating<float>(s_logits, w, i, -1, E, K));
        Throws("numExperts", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, 0, K));
        Throws("numExperts", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, -16, K));
        Throws("topK", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, 0));
        Throws("topK", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, -1));
        Throws("topK", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, E + 1));
        Throws("topK", (w, i) => Moe.Gating<float>(new float[64], new float[33], new int[33], 1, 64, Moe.MaxTopK + 1));
        Throws("topK", (w, i) => Moe.Gating<float>(s_logits, w, i, 0, E, E + 1));
        Throws("logitsStride", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, K, logitsStride: E - 1));
        Throws("logitsStride", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, K, logitsStride: -1));
        Assert.Throws<NotSupportedException>(() => Moe.Gating<double>(new double[Tokens * E], new float[Tokens * K], new int[Tokens * K], Tokens, E, K));
        Assert.Throws<NotSupportedException>(() => Moe.Gating<int>(new int[Tokens * E], new float[Tokens * K], new int[Tokens * K], Tokens, E, K));
    }

    [Fact]
    public void ShortSpansNameThem()
    {
        Throws("logits", (w, i) => Moe.Gating<float>(s_logits.AsSpan(1), w, i, Tokens, E, K));
        Throws("logits", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, K, logitsStride: E + 1));
        Throws("logits", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens + 1, E, K));
        Throws("weights", (w, i) => Moe.Gating<float>(s_logits, w[1..], i, Tokens, E, K));
        Throws("expertIds", (w, i) => Moe.Gating<float>(s_logits, w, i[..^1], Tokens, E, K));
        Throws("correctionBias", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, K, correctionBias: new float[E - 1]));
        Throws("correctionBias", (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, K, correctionBias: new float[E + 1]));
    }

    [Fact]
    public void BadOptionsNameOptions()
    {
        void Bad(MoeGatingOptions options, string paramName = "options") =>
            Throws(paramName, (w, i) => Moe.Gating<float>(s_logits, w, i, Tokens, E, K, options));
        Bad(new MoeGatingOptions { Scoring = (MoeScoring)3 });
        Bad(new MoeGatingOptions { Scoring = (MoeScoring)(-1) });
        Bad(new MoeGatingOptions { RoutedScalingFactor = -1 });
        Bad(new MoeGatingOptions { RoutedScalingFactor = float.NaN });
        Bad(new MoeGatingOptions { RoutedScalingFactor = float.PositiveInfinity });
        Bad(new MoeGatingOptions { NumGroups = -1 });
        Bad(new MoeGatingOptions { TopKGroups = -1 });
        Bad(new MoeGatingOptions { NumGroups = 3, TopKGroups = 1 }); // does not divide 16
        Bad(new MoeGatingOptions { NumGroups = 32, TopKGroups = 1 }); // does not divide 16 either
        Bad(new MoeGatingOptions { NumGroups = 4, TopKGroups = 0 });
        Bad(new MoeGatingOptions { NumGroups = 4, TopKGroups = 5 });
        Bad(new MoeGatingOptions { NumGroups = 4, TopKGroups = -1 });
        // k more than the kept groups hold: 4 groups of 4, 1 kept, k 5.
        Throws("topK", (w, i) => Moe.Gating<float>(s_logits, w, i, 2, E, 5, new MoeGatingOptions { NumGroups = 4, TopKGroups = 1 }));
        // More groups than the kernel takes.
        Throws("options", (w, i) => Moe.Gating<float>(new float[64], w, i, 1, 64, 1, new MoeGatingOptions { NumGroups = 64, TopKGroups = 1 }));
        // Fine: no groups ignores TopKGroups; 32 groups of 2; all groups kept.
        float[] weights = new float[Tokens * K];
        int[] ids = new int[Tokens * K];
        Moe.Gating<float>(s_logits, weights, ids, Tokens, E, K, new MoeGatingOptions { NumGroups = 1, TopKGroups = 9 });
        Moe.Gating<float>(new float[64], weights, ids, 1, 64, K, new MoeGatingOptions { NumGroups = Moe.MaxGroups, TopKGroups = 2 });
        Moe.Gating<float>(s_logits, weights, ids, Tokens, E, K, new MoeGatingOptions { NumGroups = 16, TopKGroups = 16 });
    }

    [Fact]
    public void OverlapsNameTheOutput()
    {
        float[] shared = new float[Tokens * E + Tokens * K];
        s_logits.CopyTo(shared, 0);
        // weights over the logits, ids over the logits, weights over ids, either output over the bias.
        Throws("weights", (w, i) => Moe.Gating<float>(shared.AsSpan(0, Tokens * E), shared.AsSpan(Tokens * E - 1), i, Tokens, E, K));
        Throws("expertIds", (w, i) => Moe.Gating<float>(shared.AsSpan(0, Tokens * E), w, MemoryMarshal.Cast<float, int>(shared.AsSpan(Tokens * E - 2)), Tokens, E, K));
        float[] outputs = new float[2 * Tokens * K];
        Throws("weights", (w, i) => Moe.Gating<float>(s_logits, outputs, MemoryMarshal.Cast<float, int>(outputs.AsSpan(Tokens * K - 1)), Tokens, E, K));
        float[] biasAndOutputs = new float[E + Tokens * K];
        Throws("weights", (w, i) => Moe.Gating<float>(s_logits, biasAndOutputs.AsSpan(E - 1), i, Tokens, E, K,
                                                      correctionBias: biasAndOutputs.AsSpan(0, E)));
        Throws("expertIds", (w, i) => Moe.Gating<float>(s_logits, w, MemoryMarshal.Cast<float, int>(biasAndOutputs.AsSpan(E - 1)), Tokens, E, K,
                                                        correctionBias: biasAndOutputs.AsSpan(0, E)));
        // Only what is read and written counts: outputs right after the used logits are fine.
        float[] adjacent = new float[2 * E];
        Moe.Gating<float>(adjacent, adjacent.AsSpan(E, K), MemoryMarshal.Cast<float, int>(adjacent.AsSpan(E + K, K)), 1, E, K);
    }

    [Fact]
    public void BadTensorsNameThem()
    {
        ReadOnlyTensorSpan<float> Logits(nint[] lengths, nint[]? strides = null) =>
            strides is null ? new(s_logits.AsSpan(0, (int)(lengths.Aggregate((nint)1, (a, b) => a * b))), lengths) : new(s_logits, 0, lengths, strides);
        void Bad(string paramName, ReadOnlyTensorSpan<float> logits, nint[]? weightsShape = null, nint[]? idsShape = null, nint[]? weightsStrides = null)
        {
            float[] weights = Poisoned.Filled(64);
            int[] ids = new int[64];
            nint[] ws = weightsShape ?? [Tokens, K], idsS = idsShape ?? [Tokens, K];
            var w = weightsStrides is null ? new TensorSpan<float>(weights.AsSpan(0, (int)ws.Aggregate((nint)1, (a, b) => a * b)), ws)
                                           : new TensorSpan<float>(weights, 0, ws, weightsStrides);
            var i = new TensorSpan<int>(ids.AsSpan(0, (int)idsS.Aggregate((nint)1, (a, b) => a * b)), idsS);
            ArgumentException? e = null;
            try
            {
                Moe.Gating<float>(logits, w, i);
            }
            catch (ArgumentException caught)
            {
                e = caught;
            }
            Assert.True(e is not null, $"no ArgumentException for {paramName}");
            Assert.Equal(paramName, e.ParamName);
            Poisoned.Unchanged(weights, "weights");
            Assert.All(ids, id => Assert.Equal(0, id));
        }
        Bad("logits", Logits([Tokens * E]));
        Bad("logits", Logits([Tokens, 2, E / 2]));
        Bad("logits", Logits([Tokens, 0]));
        Bad("logits", Logits([Tokens, E / 2], [E, 2])); // experts not adjacent
        Bad("logits", Logits([Tokens, E], [0, 1])); // tokens closer than a row (here broadcast, stride 0)
        Bad("weights", Logits([Tokens, E]), weightsShape: [Tokens + 1, K], idsShape: [Tokens + 1, K]);
        Bad("weights", Logits([Tokens, E]), weightsShape: [Tokens, 0], idsShape: [Tokens, 0]);
        Bad("weights", Logits([Tokens, 8], [E, 1]), weightsShape: [Tokens, 9], idsShape: [Tokens, 9]);
        Bad("weights", Logits([Tokens, E]), weightsShape: [Tokens * K], idsShape: [Tokens * K]);
        Bad("weights", Logits([Tokens, E]), weightsShape: [Tokens, K], weightsStrides: [K + 1, 1]);
        Bad("expertIds", Logits([Tokens, E]), idsShape: [Tokens, K + 1]);
        Bad("expertIds", Logits([Tokens, E]), idsShape: [Tokens - 1, K]);
        Bad("expertIds", Logits([Tokens, E]), idsShape: [Tokens * K]);
    }

    // ---- the native checks behind the managed ones ------------------------------------------------------

    /// <summary>
    /// The managed checks leave no bad argument for the native library, so its own checks are exercised through the raw binding:
    /// each bad field is <c>LK_ERR_INVALID_ARGUMENT</c> with a message starting with the field's C name, and nothing written;
    /// and an empty batch needs no buffers.
    /// </summary>
    [Fact]
    public unsafe void NativeChecksNameTheField()
    {
        float[] logits = new float[Tokens * E];
        s_logits.CopyTo(logits, 0);
        float[] weights = Poisoned.Filled(Tokens * K);
        int[] ids = new int[Tokens * K];
        float[] bias = new float[E];
        using var context = On(CpuIsa.Auto, 1);
        fixed (float* l = logits)
        fixed (float* w = weights)
        fixed (int* i = ids)
        fixed (float* b = bias)
        {
            var valid = new MoeGatingParams
            {
                Logits = l, Weights = w, ExpertIds = i, CorrectionBias = b, NumTokens = Tokens, NumExperts = E, TopK = K,
                Scoring = Interop.MoeScoring.MoeSigmoid, Dtype = Dtype.F32,
            };
            Status Call(MoeGatingParams p)
            {
                using var lease = context.Acquire();
                return NativeMethods.MoeGating(lease.Handle, &p);
            }
            void Refused(string field, MoeGatingParams p)
            {
                Status status = Call(p);
                Assert.Equal(Status.ErrInvalidArgument, status);
                string message = NativeStatus.LastError();
                Assert.True(message.StartsWith(field + ":", StringComparison.Ordinal), $"'{message}' does not start with '{field}:'");
                Poisoned.Unchanged(weights, $"weights after a refused {field}");
            }
            var p = valid;
            p.TopK = 0; Refused("top_k", p);
            p = valid; p.TopK = E + 1; Refused("top_k", p);
            p = valid; p.TopK = 33; p.NumExperts = 40; p.NumTokens = 1; Refused("top_k", p);
            p = valid; p.NumExperts = 0; Refused("num_experts", p);
            p = valid; p.NumTokens = -1; Refused("num_tokens", p);
            p = valid; p.LogitsStride = E - 1; Refused("logits_stride", p);
            p = valid; p.LogitsStride = -1; Refused("logits_stride", p);
            p = valid; p.NumGroups = 3; p.TopkGroups = 1; Refused("num_groups", p);
            p = valid; p.NumGroups = 4; p.TopkGroups = 0; Refused("topk_groups", p);
            p = valid; p.NumGroups = 4; p.TopkGroups = 5; Refused("topk_groups", p);
            p = valid; p.NumGroups = 4; p.TopkGroups = 1; p.TopK = 5; Refused("top_k", p);
            p = valid; p.Scoring = (Interop.MoeScoring)3; Refused("scoring", p);
            p = valid; p.Flags = 2; Refused("flags", p);
            p = valid; p.Dtype = (Dtype)7; Refused("dtype", p);
            p = valid; p.Logits = null; Refused("logits", p);
            p = valid; p.Weights = null; Refused("weights", p);
            p = valid; p.ExpertIds = null; Refused("expert_ids", p);
            p = valid; p.Weights = (float*)l; Refused("weights", p);
            p = valid; p.ExpertIds = (int*)(w + 1); Refused("expert_ids", p);
            // Through the managed mapping, a native refusal is an ArgumentException carrying the native message.
            p = valid; p.TopK = 0;
            var e = Assert.Throws<ArgumentException>(() => NativeStatus.ThrowIfFailed(Call(p), "lk_moe_gating"));
            Assert.StartsWith("lk_moe_gating: top_k:", e.Message);
            // An empty batch reads and writes nothing, so needs no buffers.
            p = valid; p.NumTokens = 0; p.Logits = null; p.Weights = null; p.ExpertIds = null;
            Assert.Equal(Status.Ok, Call(p));
            // And the valid call works.
            Assert.Equal(Status.Ok, Call(valid));
            Assert.All(ids, id => Assert.InRange(id, 0, E - 1));
        }
    }
}

/// <summary>
/// The contract of <c>lk_moe_gating</c> (native/include/llmkernels.h, docs/moe.md) for one token, straightforwardly in float64:
/// scores, selection scores (+ bias), grouped selection, the top k, weights, renormalisation, scaling, the output order.
/// Every ranking: higher first, NaN below everything, ties to the lower index.
/// </summary>
internal static class MoeReference
{
    internal sealed record Result(int[] Ids, double[] Weights);

    /// <summary>Whether (a, ia) ranks before (b, ib).</summary>
    internal static bool Better(double a, int ia, double b, int ib)
    {
        if (double.IsNaN(a))
            return double.IsNaN(b) && ia < ib;
        if (double.IsNaN(b))
            return true;
        return a > b || (a == b && ia < ib);
    }

    private static int Compare(double a, int ia, double b, int ib) => ia == ib ? 0 : Better(a, ia, b, ib) ? -1 : 1;

    /// <summary>
    /// The token's ids and weights in output order. <paramref name="clear"/> is false when a decision (which groups are kept, which
    /// experts are chosen, the output order) compares two different values closer than f32 can be trusted to order (1e-5 relative,
    /// plus 1e-6 of the bias' scale when there is a bias), or two equal values that come from different inputs.
    /// </summary>
    internal static Result Token(double[] x, float[]? bias, int k, MoeGatingOptions o, out bool clear)
    {
        int n = x.Length;
        clear = true;
        double biasScale = bias is null ? 0 : 1 + bias.Max(b => Math.Abs((double)b));
        bool SameInput(int a, int b, bool withBias) =>
            (x[a].Equals(x[b])) && (!withBias || bias is null || ((double)bias[a]).Equals(bias[b]));
        bool Clear(double a, int ia, double b, int ib, bool withBias, bool exactTiesOk)
        {
            if (double.IsNaN(a) || double.IsNaN(b))
                return true;
            if (a == b)
                return exactTiesOk || SameInput(ia, ib, withBias);
            return Math.Abs(a - b) > 1e-5 * Math.Max(Math.Abs(a), Math.Abs(b)) + 1e-6 * biasScale;
        }

        // Scores.
        var s = new double[n];
        switch (o.Scoring)
        {
            case MoeScoring.SoftmaxTopK:
                if (x.Any(double.IsNaN))
                {
                    Array.Fill(s, double.NaN);
                    break;
                }
                double max = x.Max(), sum = 0;
                for (int e = 0; e < n; e++)
                    sum += s[e] = Math.Exp(x[e] - max);
                for (int e = 0; e < n; e++)
                    s[e] /= sum;
                break;
            case MoeScoring.TopKSoftmax:
                Array.Copy(x, s, n);
                break;
            default:
                for (int e = 0; e < n; e++)
                    s[e] = 1 / (1 + Math.Exp(-x[e]));
                break;
        }
        var sel = new double[n];
        for (int e = 0; e < n; e++)
            sel[e] = s[e] + (bias is null ? 0 : bias[e]);

        // Grouped selection: each group's score, the best TopKGroups groups.
        var allowed = new bool[n];
        Array.Fill(allowed, true);
        if (o.NumGroups > 1)
        {
            int groups = o.NumGroups, size = n / groups;
            var groupScore = new double[groups];
            for (int g = 0; g < groups; g++)
            {
                int[] members = Enumerable.Range(g * size, size).ToArray();
                Array.Sort(members, (a, b) => Compare(sel[a], a, sel[b], b));
                groupScore[g] = bias is null || size == 1 ? sel[members[0]] : sel[members[0]] + sel[members[1]];
            }
            int[] order = Enumerable.Range(0, groups).ToArray();
            Array.Sort(order, (a, b) => Compare(groupScore[a], a, groupScore[b], b));
            if (o.TopKGroups < groups && !Clear(groupScore[order[o.TopKGroups - 1]], 0, groupScore[order[o.TopKGroups]], 0, true, exactTiesOk: true))
                clear = false;
            Array.Fill(allowed, false);
            for (int i = 0; i < o.TopKGroups; i++)
                for (int e = order[i] * size; e < (order[i] + 1) * size; e++)
                    allowed[e] = true;
        }

        // The top k of the allowed experts by selection score: only the set matters (the output is sorted by weight).
        int[] candidates = Enumerable.Range(0, n).Where(e => allowed[e]).ToArray();
        Array.Sort(candidates, (a, b) => Compare(sel[a], a, sel[b], b));
        if (k < candidates.Length && !Clear(sel[candidates[k - 1]], candidates[k - 1], sel[candidates[k]], candidates[k], true, exactTiesOk: false))
            clear = false;
        int[] chosen = candidates[..k];

        // Weights.
        var w = new double[k];
        if (o.Scoring == MoeScoring.TopKSoftmax)
        {
            if (chosen.Any(e => double.IsNaN(x[e])))
                Array.Fill(w, double.NaN);
            else
            {
                double max = chosen.Max(e => x[e]), sum = 0;
                for (int j = 0; j < k; j++)
                    sum += w[j] = Math.Exp(x[chosen[j]] - max);
                for (int j = 0; j < k; j++)
                    w[j] /= sum;
            }
        }
        else
        {
            for (int j = 0; j < k; j++)
                w[j] = s[chosen[j]];
        }
        if (o.Renormalize)
        {
            double sum = w.Sum();
            for (int j = 0; j < k; j++)
                w[j] /= sum;
        }
        if (o.RoutedScalingFactor != 0)
            for (int j = 0; j < k; j++)
                w[j] *= o.RoutedScalingFactor;

        // Output order: descending weight, ties to the lower id.
        int[] slots = Enumerable.Range(0, k).ToArray();
        Array.Sort(slots, (a, b) => Compare(w[a], chosen[a], w[b], chosen[b]));
        for (int j = 0; j + 1 < k; j++)
        {
            int a = slots[j], b = slots[j + 1];
            if (!Clear(w[a], chosen[a], w[b], chosen[b], false, exactTiesOk: false))
                clear = false;
        }
        return new Result(slots.Select(j => chosen[j]).ToArray(), slots.Select(j => w[j]).ToArray());
    }
}
