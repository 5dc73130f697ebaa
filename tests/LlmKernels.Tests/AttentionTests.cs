using System.Runtime.InteropServices;

namespace LlmKernels.Tests;

/// <summary>
/// Attention.Forward and ForwardPaged on every ISA this CPU runs, for float, Half and BFloat16, against a float64 reference
/// that materialises each query head's scores (scale, soft cap, ALiBi, bias, causal mask and window, softmax in double),
/// with FlashAttention's tolerance rule (Tolerance.cs: at most twice the error of a naive two-pass float softmax, plus atol).
/// Batches mix prefill, decode and chunked prefill: sequences of 0, 1, 5, 17 and 64 keys, queries fewer than keys, more than
/// keys (the first queries then see nothing under a causal mask), and none. Head dims 8, 64 and 128 with MHA, GQA 4 and MQA;
/// causal on and off; sliding windows; ALiBi; a soft cap; biases with -inf entries and shared heads; lse; strided q, out and
/// fused kv. Output padding must keep its poison. The paged form must equal the contiguous one bit for bit, with shuffled
/// blocks of 16 and of 1 and NaN in every slot no sequence uses.
/// </summary>
public sealed class AttentionTests
{
    public static TheoryData<CpuIsa> Isas => new(CpuContext.SupportedIsas);

    [Theory, MemberData(nameof(Isas))]
    public void Float(CpuIsa isa) => Check<float>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void Half(CpuIsa isa) => Check<System.Half>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void BFloat16(CpuIsa isa) => Check<LlmKernels.BFloat16>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void PagedFloat(CpuIsa isa) => Paged<float>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void PagedHalf(CpuIsa isa) => Paged<System.Half>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void PagedBFloat16(CpuIsa isa) => Paged<LlmKernels.BFloat16>(isa);

    internal enum BiasKind { None, PerHead, SharedAcrossHeads }

    internal sealed record Variant(string Name, AttentionOptions Options, bool Alibi = false, BiasKind Bias = BiasKind.None,
                                   bool Lse = false, bool Strided = false);

    private static readonly (int Heads, int KvHeads, int HeadDim)[] s_shapes = [(4, 4, 8), (8, 2, 64), (4, 1, 128)];

    /// <summary>(queries, keys) per sequence.</summary>
    private static readonly (int Sq, int Sk)[][] s_batches =
    [
        [(5, 5), (0, 3), (17, 17), (1, 1), (3, 0)],            // prefill, with empty sequences
        [(1, 17), (5, 17), (0, 0), (17, 64), (5, 3), (1, 5)],  // decode, chunked prefill, more queries than keys
    ];

    private static readonly Variant[] s_variants =
    [
        new("plain", new AttentionOptions(), Lse: true),
        new("causal", new AttentionOptions { Causal = true }, Lse: true, Strided: true),
        new("causal window 4", new AttentionOptions { Causal = true, WindowLeft = 4, WindowRight = 0 }, Lse: true),
        new("window (3, 2)", new AttentionOptions { WindowLeft = 3, WindowRight = 2 }, Strided: true),
        new("window (-1, 1)", new AttentionOptions { WindowRight = 1 }, Lse: true),
        new("causal alibi", new AttentionOptions { Causal = true }, Alibi: true, Lse: true),
        new("softcap", new AttentionOptions { Softcap = 2.5f, Scale = 0.75f }, Lse: true),
        new("bias", new AttentionOptions { Causal = true }, Bias: BiasKind.PerHead, Lse: true),
        new("shared bias", new AttentionOptions(), Bias: BiasKind.SharedAcrossHeads, Strided: true),
        new("everything", new AttentionOptions { Causal = true, WindowLeft = 8, Softcap = 4f, Scale = 0.5f }, Alibi: true,
            Bias: BiasKind.PerHead, Lse: true, Strided: true),
    ];

    private static void Check<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 4 });
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, "attention") & 0xffff);
        foreach (var (heads, kvHeads, headDim) in s_shapes)
            foreach (var batch in s_batches)
                foreach (Variant variant in s_variants)
                {
                    var problem = Problem<T>.Create(random, batch, heads, kvHeads, headDim, variant);
                    string what = $"Attention<{typeof(T).Name}> {isa} heads {heads}/{kvHeads} d {headDim} batch " +
                                  $"[{string.Join(' ', batch)}] {variant.Name}";
                    var (output, lse) = problem.RunForward(context, variant.Strided);
                    var reference = problem.Reference();
                    Tolerance.AssertClose<T>(output, reference.Out, reference.NaiveOut, what + " output");
                    if (lse is not null)
                        AssertLse(lse, reference.Lse, reference.NaiveLse, what + " lse");
                }
    }

    /// <summary>-inf exactly where no key is visible; the finite rest within the tolerance.</summary>
    internal static void AssertLse(float[] lse, double[] reference, float[] naive, string what)
    {
        var finite = new List<int>();
        for (int i = 0; i < reference.Length; i++)
        {
            if (double.IsNegativeInfinity(reference[i]))
            {
                if (!float.IsNegativeInfinity(lse[i]))
                    Assert.Fail($"{what}: element {i} sees no key but is {lse[i]:R}, not -inf");
            }
            else
                finite.Add(i);
        }
        Tolerance.AssertClose<float>(finite.Select(i => lse[i]).ToArray(), finite.Select(i => reference[i]).ToArray(),
                                     finite.Select(i => naive[i]).ToArray(), what);
    }

    private static readonly int[] s_blockSizes = [16, 1];

    private static void Paged<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 4 });
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, "paged") & 0xffff);
        foreach (var (heads, kvHeads, headDim) in s_shapes)
            foreach (var batch in s_batches)
                foreach (Variant variant in new[] { s_variants[0], s_variants[^1], s_variants[4] })
                    foreach (int blockSize in s_blockSizes)
                    {
                        var problem = Problem<T>.Create(random, batch, heads, kvHeads, headDim, variant);
                        string what = $"ForwardPaged<{typeof(T).Name}> {isa} heads {heads}/{kvHeads} d {headDim} block {blockSize} batch " +
                                      $"[{string.Join(' ', batch)}] {variant.Name}";
                        var (expected, expectedLse) = problem.RunForward(context, strided: false);
                        var (actual, actualLse) = problem.RunPaged(context, random, blockSize, variant.Strided);
                        Tolerance.AssertBitwiseEqual<T>(expected, actual, what + " output");
                        if (expectedLse is not null)
                            Tolerance.AssertBitwiseEqual<float>(expectedLse, actualLse!, what + " lse");
                    }
    }

    /// <summary>
    /// Query heads sharing a kv head (GQA) give what MHA gives with that kv head repeated, within
    /// rounding: the two may run different kernels (here MHA's 5 query rows per kv head take the
    /// decode kernel, GQA's 20 the tiled one), which sum in different orders.
    /// </summary>
    [Fact]
    public void GroupedQueryEqualsRepeatedHeads()
    {
        var random = new Random(5);
        const int heads = 8, kvHeads = 2, d = 64, tokens = 9;
        float[] q = Element.Random<float>(random, tokens * heads * d, -2, 2);
        float[] k = Element.Random<float>(random, tokens * kvHeads * d, -2, 2), v = Element.Random<float>(random, tokens * kvHeads * d, -2, 2);
        float[] kFull = new float[tokens * heads * d], vFull = new float[tokens * heads * d];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                k.AsSpan((t * kvHeads + h / 4) * d, d).CopyTo(kFull.AsSpan((t * heads + h) * d));
                v.AsSpan((t * kvHeads + h / 4) * d, d).CopyTo(vFull.AsSpan((t * heads + h) * d));
            }
        int[] cu = [0, 4, 9];
        var options = new AttentionOptions { Causal = true };
        float[] gqa = new float[q.Length], mha = new float[q.Length];
        Attention.Forward<float>(q, k, v, gqa, cu, cu, heads, kvHeads, d, options);
        Attention.Forward<float>(q, kFull, vFull, mha, cu, cu, heads, heads, d, options);
        double scale = 0;
        foreach (float x in mha) scale = Math.Max(scale, Math.Abs(x));
        for (int i = 0; i < mha.Length; i++)
            Assert.True(Math.Abs(mha[i] - gqa[i]) <= 1e-6 * scale, $"GQA vs MHA: element {i} is {gqa[i]}, MHA gives {mha[i]}");
    }

    /// <summary>q, k and v as slices of one fused qkv buffer give what separate buffers give.</summary>
    [Fact]
    public void FusedQkvEqualsSeparateBuffers()
    {
        var random = new Random(9);
        const int heads = 4, kvHeads = 2, d = 32, tokens = 12, qRow = heads * d, kvRow = kvHeads * d, stride = qRow + 2 * kvRow + 3;
        float[] qkv = Element.Random<float>(random, tokens * stride, -2, 2);
        float[] q = new float[tokens * qRow], k = new float[tokens * kvRow], v = new float[tokens * kvRow];
        for (int t = 0; t < tokens; t++)
        {
            qkv.AsSpan(t * stride, qRow).CopyTo(q.AsSpan(t * qRow));
            qkv.AsSpan(t * stride + qRow, kvRow).CopyTo(k.AsSpan(t * kvRow));
            qkv.AsSpan(t * stride + qRow + kvRow, kvRow).CopyTo(v.AsSpan(t * kvRow));
        }
        int[] cu = [0, 7, 7, 12];
        var options = new AttentionOptions { Causal = true };
        float[] fused = new float[tokens * qRow], separate = new float[tokens * qRow];
        float[] fusedLse = new float[tokens * heads], separateLse = new float[tokens * heads];
        Attention.Forward<float>(qkv, qkv.AsSpan(qRow), qkv.AsSpan(qRow + kvRow), fused, cu, cu, heads, kvHeads, d, options,
                                 lse: fusedLse, qStride: stride, kStride: stride, vStride: stride);
        Attention.Forward<float>(q, k, v, separate, cu, cu, heads, kvHeads, d, options, lse: separateLse);
        Tolerance.AssertBitwiseEqual<float>(separate, fused, "fused qkv output");
        Tolerance.AssertBitwiseEqual<float>(separateLse, fusedLse, "fused qkv lse");
    }

    /// <summary>Null options, scale 0 and the default context are 1/sqrt(headDim) on Default, bit for bit.</summary>
    [Fact]
    public void DefaultsAreOneOverSqrtHeadDim()
    {
        var random = new Random(13);
        const int heads = 2, d = 48, tokens = 6;
        float[] q = Element.Random<float>(random, tokens * heads * d, -2, 2);
        float[] k = Element.Random<float>(random, tokens * heads * d, -2, 2), v = Element.Random<float>(random, tokens * heads * d, -2, 2);
        int[] cuQ = [0, 2, 6], cuK = [0, 3, 6];
        float[] byDefault = new float[q.Length], explicitScale = new float[q.Length];
        // One context for both calls: each ISA sums in its own order, so only the same one is bitwise comparable.
        using var context = new CpuContext(new CpuContextOptions { Isa = CpuIsa.Scalar, ThreadCount = 1 });
        Attention.Forward<float>(q, k, v, byDefault, cuQ, cuK, heads, heads, d, context: context);
        Attention.Forward<float>(q, k, v, explicitScale, cuQ, cuK, heads, heads, d,
                                 new AttentionOptions { Scale = 1f / MathF.Sqrt(d) }, context: context);
        Tolerance.AssertBitwiseEqual<float>(explicitScale, byDefault, "default scale");
    }

    /// <summary>A NaN in a query makes that query head's output and lse NaN, and nothing else.</summary>
    [Fact]
    public void NaNQueryPoisonsOnlyItsRow()
    {
        var random = new Random(17);
        const int heads = 3, d = 16, tokens = 5;
        float[] q = Element.Random<float>(random, tokens * heads * d, -2, 2);
        float[] k = Element.Random<float>(random, tokens * heads * d, -2, 2), v = Element.Random<float>(random, tokens * heads * d, -2, 2);
        q[(2 * heads + 1) * d + 7] = float.NaN; // token 2, head 1
        int[] cu = [0, tokens];
        float[] output = new float[q.Length], lse = new float[tokens * heads];
        Attention.Forward<float>(q, k, v, output, cu, cu, heads, heads, d, new AttentionOptions { Causal = true }, lse: lse);
        for (int row = 0; row < tokens * heads; row++)
        {
            bool poisoned = row == 2 * heads + 1;
            Assert.Equal(poisoned, float.IsNaN(lse[row]));
            for (int e = 0; e < d; e++)
                Assert.Equal(poisoned, float.IsNaN(output[row * d + e]));
        }
    }

    /// <summary>A long context in f32 (the online softmax rescales many times), against float64.</summary>
    [Fact]
    public void LongContextFloat()
    {
        var random = new Random(21);
        var variant = new Variant("long", new AttentionOptions { Causal = true }, Alibi: true, Lse: true);
        var problem = Problem<float>.Create(random, [(3, 700), (1, 333)], 4, 2, 128, variant, scoreRange: 3f);
        var (output, lse) = problem.RunForward(CpuContext.Default, strided: false);
        var reference = problem.Reference();
        Tolerance.AssertClose<float>(output, reference.Out, reference.NaiveOut, "long context output");
        AssertLse(lse!, reference.Lse, reference.NaiveLse, "long context lse");
    }

    /// <summary>One call's inputs (as T and as the floats they are) and the float64 reference of its outputs.</summary>
    internal sealed class Problem<T> where T : unmanaged
    {
        public required int Heads, KvHeads, HeadDim, TotalQ, TotalK;
        public required int[] CuQ, CuK, SeqLensK;
        public required T[] Q, K, V;
        public required Variant Variant;
        public float[]? Alibi, Bias;
        public int BiasHeadStride, BiasRowStride;

        public static Problem<T> Create(Random random, (int Sq, int Sk)[] batch, int heads, int kvHeads, int headDim, Variant variant,
                                        float scoreRange = 2f)
        {
            int n = batch.Length;
            int[] cuQ = new int[n + 1], cuK = new int[n + 1], seqLensK = new int[n];
            for (int s = 0; s < n; s++)
            {
                cuQ[s + 1] = cuQ[s] + batch[s].Sq;
                cuK[s + 1] = cuK[s] + batch[s].Sk;
                seqLensK[s] = batch[s].Sk;
            }
            int totalQ = cuQ[n], totalK = cuK[n];
            var problem = new Problem<T>
            {
                Heads = heads, KvHeads = kvHeads, HeadDim = headDim, TotalQ = totalQ, TotalK = totalK, CuQ = cuQ, CuK = cuK,
                SeqLensK = seqLensK, Variant = variant,
                Q = Element.Random<T>(random, totalQ * heads * headDim, -scoreRange, scoreRange),
                K = Element.Random<T>(random, totalK * kvHeads * headDim, -scoreRange, scoreRange),
                V = Element.Random<T>(random, totalK * kvHeads * headDim, -1f, 1f),
            };
            if (variant.Alibi)
            {
                // ALiBi's geometric slopes, 2^(-8 (h + 1) / heads), scaled up so they matter over these short sequences.
                problem.Alibi = new float[heads];
                for (int h = 0; h < heads; h++)
                    problem.Alibi[h] = 4f * MathF.Pow(2f, -8f * (h + 1) / heads);
            }
            if (variant.Bias != BiasKind.None)
            {
                int maxK = Math.Max(seqLensK.Max(), 1);
                problem.BiasRowStride = maxK + 2;
                problem.BiasHeadStride = variant.Bias == BiasKind.PerHead ? totalQ * problem.BiasRowStride + 1 : 0;
                int length = (variant.Bias == BiasKind.PerHead ? heads : 1) * (totalQ * problem.BiasRowStride + 1);
                problem.Bias = new float[length];
                for (int i = 0; i < length; i++)
                    problem.Bias[i] = random.Next(8) == 0 ? float.NegativeInfinity : -2f + 4f * random.NextSingle();
            }
            return problem;
        }

        private const byte Poison = 0xA5;

        /// <summary>Runs Forward (strided: padded q and out, k and v interleaved in one buffer) and returns the dense output and lse.</summary>
        public (T[] Output, float[]? Lse) RunForward(CpuContext context, bool strided)
        {
            int qRow = Heads * HeadDim, kvRow = KvHeads * HeadDim;
            int qStride = strided ? qRow + 3 : qRow, outStride = strided ? qRow + 2 : qRow, kvStride = strided ? 2 * kvRow + 1 : kvRow;
            T[] q = Spread(Q, TotalQ, qRow, qStride, 0);
            T[] k, v;
            int vOffset = 0;
            if (strided)
            {
                k = v = Spread(K, TotalK, kvRow, kvStride, 0);
                vOffset = kvRow;
                for (int t = 0; t < TotalK; t++)
                    V.AsSpan(t * kvRow, kvRow).CopyTo(v.AsSpan(t * kvStride + kvRow));
            }
            else
                (k, v) = ((T[])K.Clone(), (T[])V.Clone());
            T[] output = Poisoned(Math.Max(TotalQ * outStride, 1));
            float[]? lse = Variant.Lse ? Poisoned<float>(TotalQ * Heads) : null;
            T[] qBefore = (T[])q.Clone(), kBefore = (T[])k.Clone(), vBefore = (T[])v.Clone();
            Attention.Forward<T>(q, k, v.AsSpan(vOffset), output, CuQ, CuK, Heads, KvHeads, HeadDim, Variant.Options, Alibi, Bias,
                                 BiasHeadStride, BiasRowStride, lse, strided ? qStride : 0, strided ? kvStride : 0, strided ? kvStride : 0,
                                 strided ? outStride : 0, context);
            Tolerance.AssertBitwiseEqual<T>(qBefore, q, "q (input)");
            Tolerance.AssertBitwiseEqual<T>(kBefore, k, "k (input)");
            Tolerance.AssertBitwiseEqual<T>(vBefore, v, "v (input)");
            return (Gather(output, outStride, qRow), lse);
        }

        /// <summary>Writes K and V into a paged cache of shuffled blocks (NaN in every unused slot, garbage in every unused table
        /// entry) with KvCache.Write, runs ForwardPaged and returns the dense output and lse.</summary>
        public (T[] Output, float[]? Lse) RunPaged(CpuContext context, Random random, int blockSize, bool strided)
        {
            int qRow = Heads * HeadDim, kvRow = KvHeads * HeadDim, n = SeqLensK.Length;
            int maxBlocksPerSeq = (SeqLensK.Max() + blockSize - 1) / blockSize + 1;
            int used = SeqLensK.Sum(len => (len + blockSize - 1) / blockSize);
            var layout = new PagedKvCacheLayout(used + 3, blockSize, KvHeads, HeadDim);
            int[] blocks = Enumerable.Range(0, layout.NumBlocks).OrderBy(_ => random.Next()).ToArray();
            int[] tables = new int[n * maxBlocksPerSeq + 2];
            for (int i = 0; i < tables.Length; i++)
                tables[i] = random.Next(3) switch { 0 => -1, 1 => int.MaxValue, _ => random.Next(int.MinValue, int.MaxValue) };
            var slots = new long[TotalK];
            int next = 0;
            for (int s = 0; s < n; s++)
            {
                int count = (SeqLensK[s] + blockSize - 1) / blockSize;
                for (int b = 0; b < count; b++)
                    tables[s * maxBlocksPerSeq + b] = blocks[next++];
                for (int j = 0; j < SeqLensK[s]; j++)
                    slots[CuK[s] + j] = (long)tables[s * maxBlocksPerSeq + j / blockSize] * blockSize + j % blockSize;
            }
            T[] keyCache = new T[layout.CacheElements], valueCache = new T[layout.CacheElements];
            keyCache.AsSpan().Fill(Element.NaN<T>());
            valueCache.AsSpan().Fill(Element.NaN<T>());
            KvCache.Write<T>(keyCache, valueCache, layout, K, V, slots, context: context);

            int qStride = strided ? qRow + 3 : qRow, outStride = strided ? qRow + 2 : qRow;
            T[] q = Spread(Q, TotalQ, qRow, qStride, 0);
            T[] output = Poisoned(Math.Max(TotalQ * outStride, 1));
            float[]? lse = Variant.Lse ? Poisoned<float>(TotalQ * Heads) : null;
            Attention.ForwardPaged<T>(q, keyCache, valueCache, layout, tables, maxBlocksPerSeq, SeqLensK, output, CuQ, Heads,
                                      Variant.Options, Alibi, Bias, BiasHeadStride, BiasRowStride, lse, strided ? qStride : 0,
                                      strided ? outStride : 0, context);
            return (Gather(output, outStride, qRow), lse);
        }

        private static T[] Spread(T[] dense, int tokens, int row, int stride, int offset)
        {
            T[] result = Poisoned(Math.Max(tokens * stride, 1));
            for (int t = 0; t < tokens; t++)
                dense.AsSpan(t * row, row).CopyTo(result.AsSpan(t * stride + offset));
            return result;
        }

        /// <summary>The rows of a strided output, checking its padding kept its poison.</summary>
        private T[] Gather(T[] output, int stride, int row)
        {
            var dense = new T[TotalQ * row];
            for (int t = 0; t < TotalQ; t++)
            {
                output.AsSpan(t * stride, row).CopyTo(dense.AsSpan(t * row));
                foreach (byte b in MemoryMarshal.AsBytes(output.AsSpan(t * stride + row, stride - row)))
                    Assert.True(b == Poison, $"output padding of token {t} was written");
            }
            return dense;
        }

        private static TElement[] Poisoned<TElement>(int length) where TElement : unmanaged
        {
            var values = new TElement[length];
            MemoryMarshal.AsBytes(values.AsSpan()).Fill(Poison);
            return values;
        }

        private static T[] Poisoned(int length) => Poisoned<T>(length);

        /// <summary>
        /// The float64 reference (scores materialised, softmax in double) and the naive float one (the same math in f32, a
        /// two-pass softmax, the output rounded to T): output <c>[TotalQ, Heads, HeadDim]</c>, lse <c>[TotalQ, Heads]</c>.
        /// </summary>
        public (double[] Out, float[] NaiveOut, double[] Lse, float[] NaiveLse) Reference()
        {
            AttentionOptions o = Variant.Options;
            int d = HeadDim, group = Heads / KvHeads;
            float[] q = Element.ToFloats<T>(Q), k = Element.ToFloats<T>(K), v = Element.ToFloats<T>(V);
            double scale = o.Scale != 0 ? o.Scale : 1.0 / Math.Sqrt(d);
            float scaleF = o.Scale != 0 ? o.Scale : 1f / MathF.Sqrt(d);
            var output = new double[TotalQ * Heads * d];
            var naive = new float[TotalQ * Heads * d];
            var lse = new double[TotalQ * Heads];
            var naiveLse = new float[TotalQ * Heads];
            for (int s = 0; s + 1 < CuQ.Length; s++)
            {
                int sq = CuQ[s + 1] - CuQ[s], sk = CuK[s + 1] - CuK[s];
                var scores = new double[sk];
                var scoresF = new float[sk];
                var visible = new bool[sk];
                for (int i = 0; i < sq; i++)
                {
                    int t = CuQ[s] + i, p = i + sk - sq;
                    for (int h = 0; h < Heads; h++)
                    {
                        int kvh = h / group, row = t * Heads + h;
                        bool any = false;
                        for (int j = 0; j < sk; j++)
                        {
                            visible[j] = (!o.Causal || j <= p) && (o.WindowLeft < 0 || j >= p - o.WindowLeft) &&
                                         (o.WindowRight < 0 || j <= p + o.WindowRight);
                            if (!visible[j])
                                continue;
                            double dot = 0;
                            float dotF = 0;
                            int qBase = row * d, kBase = ((CuK[s] + j) * KvHeads + kvh) * d;
                            for (int e = 0; e < d; e++)
                            {
                                dot += (double)q[qBase + e] * k[kBase + e];
                                dotF += q[qBase + e] * k[kBase + e];
                            }
                            double score = dot * scale;
                            float scoreF = dotF * scaleF;
                            if (o.Softcap > 0)
                            {
                                score = o.Softcap * Math.Tanh(score / o.Softcap);
                                scoreF = o.Softcap * MathF.Tanh(scoreF / o.Softcap);
                            }
                            if (Alibi is not null)
                            {
                                score -= (double)Alibi[h] * Math.Abs(p - j);
                                scoreF -= Alibi[h] * Math.Abs(p - j);
                            }
                            if (Bias is not null)
                            {
                                float b = Bias[h * BiasHeadStride + t * BiasRowStride + j];
                                score += b;
                                scoreF += b;
                            }
                            visible[j] = score > double.NegativeInfinity;
                            scores[j] = score;
                            scoresF[j] = scoreF;
                            any |= visible[j];
                        }
                        if (!any)
                        {
                            lse[row] = double.NegativeInfinity;
                            naiveLse[row] = float.NegativeInfinity;
                            continue; // outputs stay 0
                        }
                        double max = double.NegativeInfinity;
                        float maxF = float.NegativeInfinity;
                        for (int j = 0; j < sk; j++)
                            if (visible[j])
                            {
                                max = Math.Max(max, scores[j]);
                                maxF = MathF.Max(maxF, scoresF[j]);
                            }
                        double sum = 0;
                        float sumF = 0;
                        var acc = new double[d];
                        var accF = new float[d];
                        for (int j = 0; j < sk; j++)
                        {
                            if (!visible[j])
                                continue;
                            double w = Math.Exp(scores[j] - max);
                            float wF = MathF.Exp(scoresF[j] - maxF);
                            sum += w;
                            sumF += wF;
                            int vBase = ((CuK[s] + j) * KvHeads + kvh) * d;
                            for (int e = 0; e < d; e++)
                            {
                                acc[e] += w * v[vBase + e];
                                accF[e] += wF * v[vBase + e];
                            }
                        }
                        for (int e = 0; e < d; e++)
                        {
                            output[row * d + e] = acc[e] / sum;
                            naive[row * d + e] = Element.ToFloat(Element.FromFloat<T>(accF[e] / sumF));
                        }
                        lse[row] = max + Math.Log(sum);
                        naiveLse[row] = maxF + MathF.Log(sumF);
                    }
                }
            }
            return (output, naive, lse, naiveLse);
        }
    }
}
