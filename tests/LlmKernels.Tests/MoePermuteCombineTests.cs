using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace LlmKernels.Tests;

/// <summary>
/// Moe.Permute and Moe.Combine on every ISA this CPU runs, for float, Half and BFloat16 rows: the permute bit for bit against
/// <see cref="MoeRoutingReference.Permute{T}"/> (random bits, NaN payloads included), padding rows zeroed, strides, nothing written
/// between rows or past them; the combine within <see cref="Tolerance"/> of a float64 reference and bit for bit equal to the
/// header's f32 fused multiply-adds in slot order, slots of other processes skipped (their weights NaN, never read), tokens with none
/// zeroed, strides; the round trip gating, routing, permute, a per-expert transform and combine; expert-parallel halves summing to
/// the whole; threads; the tensor overloads.
/// </summary>
public sealed class MoePermuteCombineTests
{
    public static TheoryData<CpuIsa> Isas() => MoeRoutingTests.Isas();

    private static CpuContext On(CpuIsa isa, int threads = 2) => MoeRoutingTests.On(isa, threads);

    private const int Extra = 5;

    /// <summary>Plans <paramref name="ids"/>; returns the rows' slots (<c>sortedSlots[..expertOffsets[local]]</c>) and the slot rows.</summary>
    private static (int[] Sorted, int[] SlotRows) Plan(int[] ids, int tokens, int k, int experts, int blockSize, int begin = 0, int end = 0)
    {
        int local = (begin == 0 && end == 0 ? experts : end) - begin;
        int[] counts = new int[local], offsets = new int[local + 1], sorted = new int[Moe.RoutingCapacity(tokens, k, local, blockSize)];
        int[] slotRows = new int[tokens * k];
        Moe.Routing(ids, tokens, k, experts, counts, offsets, sorted, slotRows, blockSize: blockSize, expertBegin: begin, expertEnd: end);
        return (sorted[..offsets[local]], slotRows);
    }

    // ---- permute ----------------------------------------------------------------------------------------------

    // (tokens, k, experts, hidden, input padding, output padding, block size, expert range): sizes a thread split applies to
    // (hundreds of rows of 512 and more), odd hidden sizes, strides, padded plans, an expert-parallel subset, one row of one.
    private static readonly (int Tokens, int K, int Experts, int Hidden, int InPad, int OutPad, int Block, int Begin, int End)[] s_permuteShapes =
    [
        (300, 2, 8, 512, 0, 0, 16, 0, 0), (37, 4, 60, 33, 3, 5, 4, 0, 0), (1, 1, 1, 1, 0, 0, 0, 0, 0), (17, 8, 64, 100, 0, 7, 0, 0, 0),
        (64, 6, 160, 2048, 16, 0, 64, 40, 80), (5, 8, 256, 7, 1, 1, 2, 0, 0), (1000, 8, 128, 64, 0, 0, 0, 0, 0),
    ];

    [Theory, MemberData(nameof(Isas))]
    public void PermuteIsBitExact(CpuIsa isa)
    {
        CheckPermute<float>(isa);
        CheckPermute<Half>(isa);
        CheckPermute<BFloat16>(isa);
    }

    private static void CheckPermute<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = On(isa, 4);
        var random = new Random(300 + (int)isa * 10 + Element.MantissaBits<T>());
        foreach (var (tokens, k, experts, hidden, inPad, outPad, block, begin, end) in s_permuteShapes)
        {
            string what = $"Permute<{typeof(T).Name}> {isa} tokens {tokens} k {k} E {experts} hidden {hidden} pads {inPad}/{outPad} block {block}";
            int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
            var (sorted, _) = Plan(ids, tokens, k, experts, block, begin, end);
            int inStride = hidden + inPad, outStride = hidden + outPad;
            // The input ends at the last token's row; the gaps hold random bits too (never read).
            T[] input = MoeRoutingReference.RandomBits<T>(random, (tokens - 1) * inStride + hidden);
            T[] output = MoeRoutingReference.RandomBits<T>(random, sorted.Length * outStride + Extra);
            T[] expected = (T[])output.Clone();
            MoeRoutingReference.Permute<T>(input, expected, sorted, k, hidden, inStride, outStride);
            Moe.Permute<T>(input, output, sorted, tokens, k, hidden, inPad == 0 ? 0 : inStride, outPad == 0 ? 0 : outStride, context);
            Tolerance.AssertBitwiseEqual<T>(expected, output, what);
        }
    }

    [Fact]
    public void PermuteOfNoRowsOrOnlyPadding()
    {
        float[] input = [1, 2, 3, 4];
        float[] output = [9, 9, 9, 9];
        Moe.Permute<float>(input, output, ReadOnlySpan<int>.Empty, 2, 1, 2);
        Assert.Equal([9f, 9, 9, 9], output);
        // Padding rows alone read nothing: no tokens at all will do, and the rows are zeros.
        Moe.Permute<float>(ReadOnlySpan<float>.Empty, output, [-1, -1], 0, 3, 2);
        Assert.Equal([0f, 0, 0, 0], output);
        Half[] halves = [(Half)9, (Half)9, (Half)9];
        Moe.Permute<Half>(ReadOnlySpan<Half>.Empty, halves, [-1], 0, 1, 2, outputStride: 3);
        Assert.Equal([(Half)0, (Half)0, (Half)9], halves);
    }

    // ---- combine ----------------------------------------------------------------------------------------------

    // (tokens, k, experts, hidden, expert padding, output padding, block size, expert range): a thread split, SIMD widths and ragged
    // tails, strides, padded plans, expert-parallel subsets (slots without a row), k of 1 and of MaxTopK.
    private static readonly (int Tokens, int K, int Experts, int Hidden, int ExPad, int OutPad, int Block, int Begin, int End)[] s_combineShapes =
    [
        (300, 2, 8, 512, 0, 0, 16, 0, 0), (37, 4, 60, 33, 3, 5, 4, 0, 0), (1, 1, 1, 1, 0, 0, 0, 0, 0), (17, 8, 64, 100, 0, 7, 0, 16, 48),
        (64, 6, 160, 2048, 16, 0, 64, 40, 80), (5, 8, 256, 7, 1, 1, 2, 0, 0), (200, 8, 128, 64, 0, 0, 0, 0, 0), (9, 1, 16, 17, 0, 0, 0, 0, 8),
        (4, 32, 64, 65, 2, 0, 0, 0, 0), (3, 32, 32, 16, 0, 0, 8, 8, 9),
    ];

    [Theory, MemberData(nameof(Isas))]
    public void CombineMatchesTheReference(CpuIsa isa)
    {
        CheckCombine<float>(isa);
        CheckCombine<Half>(isa);
        CheckCombine<BFloat16>(isa);
    }

    private static void CheckCombine<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = On(isa, 4);
        var random = new Random(400 + (int)isa * 10 + Element.MantissaBits<T>());
        foreach (var (tokens, k, experts, hidden, exPad, outPad, block, begin, end) in s_combineShapes)
        {
            string what = $"Combine<{typeof(T).Name}> {isa} tokens {tokens} k {k} E {experts} hidden {hidden} pads {exPad}/{outPad} " +
                          $"block {block} [{begin}, {end})";
            int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
            var (sorted, slotRows) = Plan(ids, tokens, k, experts, block, begin, end);
            int rows = sorted.Length, exStride = hidden + exPad, outStride = hidden + outPad;
            // The expert rows end at the last row; NaN between rows (never read). Weights of slots without a row are NaN too.
            T[] expertOutput = new T[rows == 0 ? 0 : (rows - 1) * exStride + hidden];
            expertOutput.AsSpan().Fill(Element.NaN<T>());
            for (int r = 0; r < rows; r++)
                Element.Random<T>(random, hidden, -2, 2).CopyTo(expertOutput, r * exStride);
            float[] weights = new float[tokens * k];
            for (int s = 0; s < weights.Length; s++)
                weights[s] = slotRows[s] < 0 ? float.NaN : random.NextSingle();
            T[] output = new T[(tokens - 1) * outStride + hidden + Extra];
            output.AsSpan().Fill(Element.FromFloat<T>(-99));

            Moe.Combine<T>(expertOutput, weights, slotRows, output, tokens, k, hidden, exPad == 0 ? 0 : exStride, outPad == 0 ? 0 : outStride,
                           context);

            double[] reference = MoeRoutingReference.Combine<T>(expertOutput, weights, slotRows, tokens, k, hidden, exStride);
            T[] f32 = MoeRoutingReference.CombineF32<T>(expertOutput, weights, slotRows, tokens, k, hidden, exStride);
            T[] dense = new T[tokens * hidden];
            float[] naive = new float[tokens * hidden];
            for (int t = 0; t < tokens; t++)
            {
                output.AsSpan(t * outStride, hidden).CopyTo(dense.AsSpan(t * hidden));
                for (int i = 0; i < hidden; i++)
                    naive[t * hidden + i] = Element.ToFloat(f32[t * hidden + i]);
                // Between rows and past the last, nothing written.
                int gapEnd = t == tokens - 1 ? output.Length : (t + 1) * outStride;
                for (int i = t * outStride + hidden; i < gapEnd; i++)
                    Assert.True(Element.ToFloat(output[i]) == -99, $"{what}: output[{i}] between or past the rows written");
            }
            Tolerance.AssertClose<T>(dense, reference, naive, what);
            Tolerance.AssertBitwiseEqual<T>(f32, dense, $"{what}: against f32 fused multiply-adds in slot order");
        }
    }

    [Fact]
    public void CombineZeroesTokensWithoutRows()
    {
        // Token 0 has both slots elsewhere (-1), token 1 one of them: token 0's row is +0, token 1's is its one slot's.
        float[] expertOutput = [1, 2, 3];
        float[] weights = [float.NaN, float.NaN, 0.5f, float.NaN];
        int[] slotRows = [-1, -1, 0, -1];
        float[] output = [7, 7, 7, 7, 7, 7];
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
        {
            using var context = On(isa);
            Moe.Combine<float>(expertOutput, weights, slotRows, output, 2, 2, 3, context: context);
            Assert.Equal([0f, 0, 0, 0.5f, 1, 1.5f], output);
            Assert.All(output[..3], v => Assert.False(float.IsNegative(v)));
        }
        // No rows at all: the expert output may be empty.
        Moe.Combine<float>(ReadOnlySpan<float>.Empty, weights, slotRows.Select(_ => -1).ToArray(), output, 2, 2, 3);
        Assert.All(output, v => Assert.Equal(0f, v));
        // An empty batch does nothing.
        Moe.Combine<float>(expertOutput, ReadOnlySpan<float>.Empty, ReadOnlySpan<int>.Empty, output, 0, 2, 3);
        Moe.Combine<float>(ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty, ReadOnlySpan<int>.Empty, Span<float>.Empty, 0, 2, 3);
    }

    [Fact]
    public void CombineTakesTheWholeRowsOfExpertOutput()
    {
        // With stride 4 and hidden 3, 11 elements hold rows 0, 1 and 2 (8..10); row 2 is there, a row 3 would not be.
        float[] expertOutput = [1, 1, 1, 0, 2, 2, 2, 0, 3, 3, 3];
        float[] output = new float[3];
        Moe.Combine<float>(expertOutput, [1f], [2], output, 1, 1, 3, expertStride: 4);
        Assert.Equal([3f, 3, 3], output);
        var e = Assert.Throws<ArgumentException>(() => Moe.Combine<float>(expertOutput.AsSpan(0, 10), [1f], [2], output, 1, 1, 3, expertStride: 4));
        Assert.Equal("slotRows", e.ParamName);
    }

    [Fact]
    public void ThreadsDoNotChangeTheResult()
    {
        var random = new Random(17);
        const int tokens = 500, k = 8, experts = 64, hidden = 256;
        int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
        var (sorted, slotRows) = Plan(ids, tokens, k, experts, 16);
        Half[] input = Element.Random<Half>(random, tokens * hidden, -2, 2);
        float[] weights = Element.Random<float>(random, tokens * k, 0, 1);
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
        {
            Half[] permuted1 = new Half[sorted.Length * hidden], permuted4 = new Half[sorted.Length * hidden];
            Half[] combined1 = new Half[tokens * hidden], combined4 = new Half[tokens * hidden];
            using (var one = On(isa, 1))
            {
                Moe.Permute<Half>(input, permuted1, sorted, tokens, k, hidden, context: one);
                Moe.Combine<Half>(permuted1, weights, slotRows, combined1, tokens, k, hidden, context: one);
            }
            using (var four = On(isa, 4))
            {
                Moe.Permute<Half>(input, permuted4, sorted, tokens, k, hidden, context: four);
                Moe.Combine<Half>(permuted4, weights, slotRows, combined4, tokens, k, hidden, context: four);
            }
            Tolerance.AssertBitwiseEqual<Half>(permuted1, permuted4, $"{isa} permute, 1 and 4 threads");
            Tolerance.AssertBitwiseEqual<Half>(combined1, combined4, $"{isa} combine, 1 and 4 threads");
        }
    }

    // ---- the round trip ---------------------------------------------------------------------------------------

    [Theory, MemberData(nameof(Isas))]
    public void RoundTripGivesTheMeanOfTheExpertRows(CpuIsa isa)
    {
        RoundTrip<float>(isa);
        RoundTrip<Half>(isa);
        RoundTrip<BFloat16>(isa);
    }

    /// <summary>
    /// Gating picks each token's k experts; the plan (padded to blocks of 16) orders them; the permute gathers the token rows; each
    /// expert's segment is transformed by its own function, x -> (e + 1) x - e / 8 (padding rows too, as a grouped GEMM would); the
    /// combine with weights 1/k gives each token the mean of its k experts' rows, against float64.
    /// </summary>
    private static void RoundTrip<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = On(isa);
        var random = new Random(500 + (int)isa * 10 + Element.MantissaBits<T>());
        foreach (var (tokens, k, experts, hidden) in new[] { (97, 8, 64, 96), (300, 2, 8, 33), (16, 6, 160, 128), (1, 1, 4, 5) })
        {
            string what = $"round trip <{typeof(T).Name}> {isa} tokens {tokens} k {k} E {experts} hidden {hidden}";
            T[] logits = Element.Random<T>(random, tokens * experts, -4, 4);
            float[] gateWeights = new float[tokens * k];
            int[] ids = new int[tokens * k];
            Moe.Gating<T>(logits, gateWeights, ids, tokens, experts, k, context: context);

            int capacity = Moe.RoutingCapacity(tokens, k, experts, 16);
            int[] counts = new int[experts], offsets = new int[experts + 1], sorted = new int[capacity], slotRows = new int[tokens * k];
            int[] blockExperts = new int[capacity / 16];
            Moe.Routing(ids, tokens, k, experts, counts, offsets, sorted, slotRows, blockExperts, 16, context: context);
            int rows = offsets[experts];

            T[] x = Element.Random<T>(random, tokens * hidden, -2, 2);
            T[] permuted = new T[rows * hidden];
            Moe.Permute<T>(x, permuted, sorted.AsSpan(0, rows), tokens, k, hidden, context: context);

            // Each block of 16 rows belongs to the expert block_experts names, as a grouped GEMM would read it.
            T[] expertOutput = new T[rows * hidden];
            for (int r = 0; r < rows; r++)
            {
                int e = blockExperts[r / 16];
                for (int i = 0; i < hidden; i++)
                    expertOutput[r * hidden + i] = Element.FromFloat<T>((float)Transform(e, Element.ToFloat(permuted[r * hidden + i])));
            }
            float[] mean = Enumerable.Repeat(1f / k, tokens * k).ToArray();
            T[] output = new T[tokens * hidden];
            Moe.Combine<T>(expertOutput, mean, slotRows, output, tokens, k, hidden, context: context);

            // float64: the mean of the k experts' functions of the token's row; naive: the same from the rounded expert rows in f32.
            double[] reference = new double[tokens * hidden];
            float[] naive = new float[tokens * hidden];
            for (int t = 0; t < tokens; t++)
                for (int i = 0; i < hidden; i++)
                {
                    double sum = 0;
                    float a = 0;
                    for (int j = 0; j < k; j++)
                    {
                        double xi = Element.ToFloat(x[t * hidden + i]);
                        sum += Transform(ids[t * k + j], xi);
                        a += 1f / k * Element.ToFloat(Element.FromFloat<T>((float)Transform(ids[t * k + j], xi)));
                    }
                    reference[t * hidden + i] = sum / k;
                    naive[t * hidden + i] = Element.ToFloat(Element.FromFloat<T>(a));
                }
            Tolerance.AssertClose<T>(output, reference, naive, what);
        }
    }

    private static double Transform(int expert, double x) => (expert + 1) * x - expert / 8.0;

    [Theory, MemberData(nameof(Isas))]
    public void ExpertParallelHalvesSumToTheWhole(CpuIsa isa)
    {
        using var context = On(isa);
        var random = new Random(600 + (int)isa);
        const int tokens = 45, k = 6, experts = 32, hidden = 40;
        int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
        float[] x = Element.Random<float>(random, tokens * hidden, -2, 2);
        float[] weights = Element.Random<float>(random, tokens * k, 0, 1);
        float[] Part(int begin, int end)
        {
            var (sorted, slotRows) = Plan(ids, tokens, k, experts, 4, begin, end);
            float[] permuted = new float[sorted.Length * hidden], output = new float[tokens * hidden];
            Moe.Permute<float>(x, permuted, sorted, tokens, k, hidden, context: context);
            Moe.Combine<float>(permuted, weights, slotRows, output, tokens, k, hidden, context: context);
            return output;
        }
        float[] whole = Part(0, 0), low = Part(0, 16), high = Part(16, 32);
        // Each token's rows are x itself: the whole is x times the sum of its weights.
        double[] reference = new double[tokens * hidden];
        float[] naive = new float[tokens * hidden];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < hidden; i++)
            {
                reference[t * hidden + i] = Enumerable.Range(0, k).Sum(j => (double)weights[t * k + j]) * x[t * hidden + i];
                naive[t * hidden + i] = low[t * hidden + i] + high[t * hidden + i];
            }
        Tolerance.AssertClose<float>(whole, reference, naive, $"{isa}: the whole against float64");
        for (int i = 0; i < whole.Length; i++)
            Assert.True(Math.Abs(whole[i] - naive[i]) <= 1e-5 * (1 + Math.Abs(whole[i])), $"{isa}: element {i}: whole {whole[i]}, halves {naive[i]}");
    }

    // ---- the tensor overloads --------------------------------------------------------------------------------

    [Fact]
    public void TensorOverloadsEqualSpanOverloads()
    {
        TensorEqualsSpan<float>();
        TensorEqualsSpan<Half>();
        TensorEqualsSpan<BFloat16>();
    }

    private static void TensorEqualsSpan<T>() where T : unmanaged
    {
        var random = new Random(19);
        const int tokens = 13, k = 4, experts = 16, hidden = 24, stride = 32;
        int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
        var (sorted, slotRows) = Plan(ids, tokens, k, experts, 4, 0, 8);
        int rows = sorted.Length;
        T[] input = Element.Random<T>(random, tokens * stride, -2, 2);
        float[] weights = Element.Random<float>(random, tokens * k, 0, 1);

        // [tokens, hidden] views of wider rows, in and out.
        T[] spanPermuted = new T[rows * stride], tensorPermuted = new T[rows * stride];
        Moe.Permute<T>(input, spanPermuted, sorted, tokens, k, hidden, stride, stride);
        Moe.Permute<T>(new ReadOnlyTensorSpan<T>(input, 0, [tokens, hidden], [stride, 1]),
                       new TensorSpan<T>(tensorPermuted, 0, [rows, hidden], [stride, 1]), sorted, k);
        Tolerance.AssertBitwiseEqual<T>(spanPermuted, tensorPermuted, "permute");

        T[] spanOutput = new T[tokens * stride], tensorOutput = new T[tokens * stride];
        Moe.Combine<T>(spanPermuted, weights, slotRows, spanOutput, tokens, k, hidden, stride, stride);
        Moe.Combine<T>(new ReadOnlyTensorSpan<T>(spanPermuted, 0, [rows, hidden], [stride, 1]), new ReadOnlyTensorSpan<float>(weights, [tokens, k]),
                       new ReadOnlyTensorSpan<int>(slotRows, [tokens, k]), new TensorSpan<T>(tensorOutput, 0, [tokens, hidden], [stride, 1]));
        Tolerance.AssertBitwiseEqual<T>(spanOutput, tensorOutput, "combine");

        // One row (its dimension-0 stride is 0) and dense tensors.
        T[] one = new T[hidden], dense = new T[rows * hidden];
        Moe.Permute<T>(new ReadOnlyTensorSpan<T>(input, 2 * stride, [1, hidden], [0, 1]), new TensorSpan<T>(one, [1, hidden]), [0], 1);
        Tolerance.AssertBitwiseEqual<T>(input.AsSpan(2 * stride, hidden), one, "one row");
        Moe.Permute<T>(new ReadOnlyTensorSpan<T>(input, 0, [tokens, hidden], [stride, 1]), new TensorSpan<T>(dense, [rows, hidden]), sorted, k);
        for (int r = 0; r < rows; r++)
            Tolerance.AssertBitwiseEqual<T>(spanPermuted.AsSpan(r * stride, hidden), dense.AsSpan(r * hidden, hidden), $"dense row {r}");
        T[] oneOut = new T[hidden];
        Moe.Combine<T>(new ReadOnlyTensorSpan<T>(one, [1, hidden]), new ReadOnlyTensorSpan<float>(new[] { 1f }, [1, 1]),
                       new ReadOnlyTensorSpan<int>(new[] { 0 }, [1, 1]), new TensorSpan<T>(oneOut, [1, hidden]));
        Tolerance.AssertBitwiseEqual<T>(one, oneOut, "one row, weight 1");
        // No rows, no tokens.
        Moe.Permute<T>(new ReadOnlyTensorSpan<T>(input, 0, [tokens, hidden], [stride, 1]), new TensorSpan<T>(Array.Empty<T>(), [0, hidden]),
                       ReadOnlySpan<int>.Empty, k);
        Moe.Combine<T>(new ReadOnlyTensorSpan<T>(Array.Empty<T>(), [0, hidden]), new ReadOnlyTensorSpan<float>(Array.Empty<float>(), [0, k]),
                       new ReadOnlyTensorSpan<int>(Array.Empty<int>(), [0, k]), new TensorSpan<T>(Array.Empty<T>(), [0, hidden]));
    }
}
