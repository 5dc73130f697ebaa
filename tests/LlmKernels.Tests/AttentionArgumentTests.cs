namespace LlmKernels.Tests;

/// <summary>
/// Every bad input of Attention.Forward and ForwardPaged throws before anything is written: shapes, strides, options and
/// overlaps are checked in C# and name the C# parameter; offsets, key lengths and block ids are checked by the native library,
/// whose message names the C argument and the index. And the edge cases that are not errors just work.
/// </summary>
public sealed class AttentionArgumentTests
{
    // 2 sequences: 3 queries over 4 keys, then 2 queries over 2 keys. 4 heads over 2 kv heads of 8.
    private const int Heads = 4, KvHeads = 2, D = 8, QRow = Heads * D, KvRow = KvHeads * D, TotalQ = 5, TotalK = 6;
    private const float Fill = Poisoned.Fill;
    private static readonly int[] s_cuQ = [0, 3, 5], s_cuK = [0, 4, 6];
    private static readonly float[] s_q = Enumerable.Range(0, TotalQ * QRow).Select(i => MathF.Sin(i)).ToArray();
    private static readonly float[] s_k = Enumerable.Range(0, TotalK * KvRow).Select(i => MathF.Cos(i)).ToArray();
    private static readonly float[] s_v = Enumerable.Range(0, TotalK * KvRow).Select(i => MathF.Sin(3 * i)).ToArray();

    // The paged form: blocks of 2, 4 blocks; sequence 0 in blocks 3, 1; sequence 1 in block 0.
    private static readonly PagedKvCacheLayout s_layout = new(NumBlocks: 4, BlockSize: 2, NumKvHeads: KvHeads, HeadDim: D);
    private const int Cache = 4 * 2 * KvRow, MaxBlocks = 2;
    private static readonly int[] s_tables = [3, 1, 0, -1], s_seqLensK = [4, 2];
    private static readonly float[] s_keyCache = Enumerable.Range(0, Cache).Select(i => MathF.Cos(i)).ToArray();
    private static readonly float[] s_valueCache = Enumerable.Range(0, Cache).Select(i => MathF.Sin(2 * i)).ToArray();


    private delegate void Call(float[] output, float[] lse);

    /// <summary>Runs <paramref name="call"/> on a fresh output and lse, asserts the exception is <typeparamref name="TException"/>
    /// naming <paramref name="paramName"/>, and that nothing was written.</summary>
    private static void Throws<TException>(string paramName, Call call) where TException : ArgumentException
    {
        float[] output = Poisoned.Filled(TotalQ * QRow + 64), lse = Poisoned.Filled(TotalQ * Heads + 8);
        var e = Assert.Throws<TException>(() => call(output, lse));
        Assert.Equal(paramName, e.ParamName);
        Poisoned.Unchanged(output, "output");
        Poisoned.Unchanged(lse, "lse");
    }

    private static void Throws(string paramName, Call call) => Throws<ArgumentException>(paramName, call);

    private static void OutOfRange(string paramName, Call call) => Throws<ArgumentOutOfRangeException>(paramName, call);

    /// <summary>A native index check: an <see cref="ArgumentException"/> whose message names the C argument and index, and whose
    /// ParamName is the C# parameter (or, were the mapping lost, the C name).</summary>
    private static void NativeThrows(string cName, string index, string csName, Call call)
    {
        float[] output = Poisoned.Filled(TotalQ * QRow + 64), lse = Poisoned.Filled(TotalQ * Heads + 8);
        var e = Assert.Throws<ArgumentException>(() => call(output, lse));
        Assert.Contains(cName + index, e.Message);
        Assert.True(e.ParamName == csName || e.ParamName == cName, $"ParamName {e.ParamName} is neither {csName} nor {cName}");
        Poisoned.Unchanged(output, "output");
        Poisoned.Unchanged(lse, "lse");
    }

    private static void Forward(float[] output, float[] lse, ReadOnlySpan<float> q = default, ReadOnlySpan<float> k = default,
                                ReadOnlySpan<float> v = default, ReadOnlySpan<int> cuQ = default, ReadOnlySpan<int> cuK = default,
                                int heads = Heads, int kvHeads = KvHeads, int d = D, AttentionOptions? options = null,
                                ReadOnlySpan<float> alibi = default, ReadOnlySpan<float> bias = default, int biasHeadStride = 0,
                                int biasRowStride = 0, bool withLse = true, int qStride = 0, int kStride = 0, int vStride = 0,
                                int outputStride = 0, Span<float> outputSpan = default)
    {
        Span<float> o = outputSpan.IsEmpty ? output : outputSpan;
        Attention.Forward<float>(q.IsEmpty ? s_q : q, k.IsEmpty ? s_k : k, v.IsEmpty ? s_v : v, o, cuQ.IsEmpty ? s_cuQ : cuQ,
                                 cuK.IsEmpty ? s_cuK : cuK, heads, kvHeads, d, options, alibi, bias, biasHeadStride, biasRowStride,
                                 withLse ? lse.AsSpan(0, TotalQ * Heads) : default, qStride, kStride, vStride, outputStride);
    }

    private static void Paged(float[] output, float[] lse, ReadOnlySpan<float> q = default, ReadOnlySpan<float> keyCache = default,
                              ReadOnlySpan<float> valueCache = default, PagedKvCacheLayout? layout = null, ReadOnlySpan<int> tables = default,
                              int maxBlocks = MaxBlocks, ReadOnlySpan<int> seqLensK = default, ReadOnlySpan<int> cuQ = default,
                              int heads = Heads, AttentionOptions? options = null, ReadOnlySpan<float> alibi = default,
                              ReadOnlySpan<float> bias = default, int biasHeadStride = 0, int biasRowStride = 0, bool withLse = true,
                              int qStride = 0, int outputStride = 0)
    {
        Attention.ForwardPaged<float>(q.IsEmpty ? s_q : q, keyCache.IsEmpty ? s_keyCache : keyCache, valueCache.IsEmpty ? s_valueCache : valueCache,
                                      layout ?? s_layout, tables.IsEmpty ? s_tables : tables, maxBlocks, seqLensK.IsEmpty ? s_seqLensK : seqLensK,
                                      output, cuQ.IsEmpty ? s_cuQ : cuQ, heads, options, alibi, bias, biasHeadStride, biasRowStride,
                                      withLse ? lse.AsSpan(0, TotalQ * Heads) : default, qStride, outputStride);
    }

    [Fact]
    public void ValidCallsWorkAndPagedMatchesContiguous()
    {
        float[] output = Poisoned.Filled(TotalQ * QRow + 64), lse = Poisoned.Filled(TotalQ * Heads + 8);
        Forward(output, lse, options: new AttentionOptions { Causal = true });
        float[] paged = Poisoned.Filled(TotalQ * QRow + 64), pagedLse = Poisoned.Filled(TotalQ * Heads + 8);
        // The cache holding the same keys: sequence 0's tokens 0..3 in blocks 3, 1; sequence 1's in block 0.
        float[] keyCache = Poisoned.Filled(Cache), valueCache = Poisoned.Filled(Cache);
        KvCache.Write<float>(keyCache, valueCache, s_layout, s_k, s_v, new long[] { 6, 7, 2, 3, 0, 1 });
        Paged(paged, pagedLse, keyCache: keyCache, valueCache: valueCache, options: new AttentionOptions { Causal = true });
        Assert.Equal(output, paged);
        Assert.Equal(lse, pagedLse);
        Assert.True(Array.TrueForAll(output[..(TotalQ * QRow)], float.IsFinite));
        Poisoned.Unchanged(output[(TotalQ * QRow)..], "output past the rows");
    }

    [Fact]
    public void EdgeCasesAreNotErrors()
    {
        float[] output = Poisoned.Filled(TotalQ * QRow), lse = Poisoned.Filled(TotalQ * Heads);
        // No sequences at all: nothing to do, whatever the spans.
        Attention.Forward<float>(default, default, default, default, new[] { 0 }, new[] { 0 }, Heads, KvHeads, D);
        Attention.ForwardPaged<float>(default, s_keyCache, s_valueCache, s_layout, default, 0, default, default, new[] { 0 }, Heads);
        // Sequences with no queries, or no keys: empty spans are enough.
        Attention.Forward<float>(default, new float[3 * KvRow], new float[3 * KvRow], default, new[] { 0, 0, 0 }, new[] { 0, 3, 3 }, Heads,
                                 KvHeads, D);
        Attention.Forward<float>(s_q.AsSpan(0, QRow), default, default, output.AsSpan(0, QRow), new[] { 0, 1 }, new[] { 0, 0 }, Heads, KvHeads, D,
                                 lse: lse);
        Assert.True(Array.TrueForAll(output[..QRow], x => x == 0f), "a query with no keys gets 0");
        Assert.True(Array.TrueForAll(lse[..Heads], float.IsNegativeInfinity), "and lse -inf");
        // The paged form with no keys needs no block table.
        Attention.ForwardPaged<float>(s_q.AsSpan(0, QRow), s_keyCache, s_valueCache, s_layout, default, 0, new[] { 0 }, output.AsSpan(0, QRow),
                                      new[] { 0, 1 }, Heads);
        // v may be k, and q may be k (all only read); MQA; head dims 1 and 256.
        Attention.Forward<float>(s_k, s_k, s_k, output.AsSpan(0, 6 * KvRow), new[] { 0, 6 }, new[] { 0, 6 }, KvHeads, 1, D);
        Attention.Forward<float>(new float[2 * 256], new float[256], new float[256], new float[2 * 256], new[] { 0, 2 }, new[] { 0, 1 }, 1, 1, 256);
        Attention.Forward<float>(new float[3], new float[1], new float[1], new float[3], new[] { 0, 3 }, new[] { 0, 1 }, 1, 1, 1);
        // A bias exactly as long as the queries read: 2 heads x 1 row of 3 keys, head stride 3, row stride 5.
        Attention.Forward<float>(new float[2 * 4], new float[3 * 4], new float[3 * 4], new float[2 * 4], new[] { 0, 1 }, new[] { 0, 3 }, 2, 1, 4,
                                 bias: new float[3 + 3], biasHeadStride: 3, biasRowStride: 5);
    }

    [Fact]
    public void HeadCountsNameTheirParameter()
    {
        foreach (int bad in new[] { 0, -1, int.MinValue })
        {
            OutOfRange("numHeads", (o, l) => Forward(o, l, heads: bad));
            OutOfRange("numKvHeads", (o, l) => Forward(o, l, kvHeads: bad));
            OutOfRange("headDim", (o, l) => Forward(o, l, d: bad));
            OutOfRange("numHeads", (o, l) => Paged(o, l, heads: bad));
        }
        Throws("numKvHeads", (o, l) => Forward(o, l, kvHeads: 3));
        Throws("numKvHeads", (o, l) => Forward(o, l, heads: 2, kvHeads: 4));
        OutOfRange("headDim", (o, l) => Forward(o, l, d: 257));
        Throws("numHeads", (o, l) => Paged(o, l, heads: 3));
        var bigHead = new PagedKvCacheLayout(1, 1, 1, 257);
        OutOfRange("layout", (o, l) => Paged(o, l, keyCache: new float[257], valueCache: new float[257], layout: bigHead, heads: 1));
        foreach (var bad in new PagedKvCacheLayout[] { default, new(0, 2, 2, 8), new(4, 0, 2, 8), new(4, 2, 0, 8), new(4, 2, 2, -8),
                                                       new(int.MaxValue, int.MaxValue, 2, 8) })
            OutOfRange("layout", (o, l) => Paged(o, l, layout: bad));
        Assert.Throws<NotSupportedException>(() => Attention.Forward<double>(new double[TotalQ * QRow], new double[TotalK * KvRow],
            new double[TotalK * KvRow], new double[TotalQ * QRow], s_cuQ, s_cuK, Heads, KvHeads, D));
        Assert.Throws<NotSupportedException>(() => Attention.ForwardPaged<int>(new int[TotalQ * QRow], new int[Cache], new int[Cache],
            s_layout, s_tables, MaxBlocks, s_seqLensK, new int[TotalQ * QRow], s_cuQ, Heads));
    }

    [Fact]
    public void OptionsAreChecked()
    {
        foreach (var bad in new AttentionOptions[]
                 {
                     new() { Scale = float.NaN }, new() { Scale = float.PositiveInfinity }, new() { Scale = float.NegativeInfinity },
                     new() { Softcap = -1f }, new() { Softcap = float.NaN }, new() { Softcap = float.PositiveInfinity },
                     new() { WindowLeft = -2 }, new() { WindowRight = -2 }, new() { WindowLeft = int.MinValue },
                 })
        {
            OutOfRange("options", (o, l) => Forward(o, l, options: bad));
            OutOfRange("options", (o, l) => Paged(o, l, options: bad));
        }
        // Negative scales, windows of 0 (the query's own key), and -1 are fine.
        float[] output = Poisoned.Filled(TotalQ * QRow + 64), lse = Poisoned.Filled(TotalQ * Heads + 8);
        Forward(output, lse, options: new AttentionOptions { Scale = -0.5f, WindowLeft = 0, WindowRight = 0, Softcap = 1f });
    }

    [Fact]
    public void OffsetLengthsAndSpansNameTheirParameter()
    {
        Throws("cuSeqlensQ", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, o, ReadOnlySpan<int>.Empty, ReadOnlySpan<int>.Empty, Heads, KvHeads, D));
        Throws("cuSeqlensQ", (o, l) => Attention.ForwardPaged<float>(s_q, s_keyCache, s_valueCache, s_layout, s_tables, MaxBlocks,
                                                                     ReadOnlySpan<int>.Empty, o, ReadOnlySpan<int>.Empty, Heads));
        Throws("cuSeqlensK", (o, l) => Forward(o, l, cuK: new[] { 0, 6 }));
        Throws("cuSeqlensK", (o, l) => Forward(o, l, cuK: new[] { 0, 4, 6, 6 }));
        // One token short, for each tensor.
        Throws("q", (o, l) => Forward(o, l, q: s_q.AsSpan(0, TotalQ * QRow - 1)));
        Throws("k", (o, l) => Forward(o, l, k: s_k.AsSpan(1)));
        Throws("v", (o, l) => Forward(o, l, v: s_v.AsSpan(0, 5 * KvRow)));
        Throws("output", (o, l) => Forward(o, l, outputSpan: o.AsSpan(0, TotalQ * QRow - 1)));
        Throws("q", (o, l) => Forward(o, l, cuQ: new[] { 0, 3, 6 }, cuK: new[] { 0, 4, 6 }));
        Throws("k", (o, l) => Forward(o, l, cuK: new[] { 0, 4, 7 }));
        Throws("lse", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, o, s_cuQ, s_cuK, Heads, KvHeads, D, lse: l.AsSpan(0, TotalQ * Heads - 1)));
        Throws("q", (o, l) => Paged(o, l, q: s_q.AsSpan(QRow)));
        Throws("output", (o, l) => Attention.ForwardPaged<float>(s_q, s_keyCache, s_valueCache, s_layout, s_tables, MaxBlocks, s_seqLensK,
                                                                 o.AsSpan(0, 4 * QRow), s_cuQ, Heads));
        Throws("lse", (o, l) => Attention.ForwardPaged<float>(s_q, s_keyCache, s_valueCache, s_layout, s_tables, MaxBlocks, s_seqLensK, o,
                                                              s_cuQ, Heads, lse: l.AsSpan(0, 3)));
    }

    [Fact]
    public void StridesNameTheirParameter()
    {
        foreach (int bad in new[] { -1, 1, KvRow - 1, int.MinValue })
        {
            OutOfRange("qStride", (o, l) => Forward(o, l, qStride: bad));
            OutOfRange("kStride", (o, l) => Forward(o, l, kStride: bad));
            OutOfRange("vStride", (o, l) => Forward(o, l, vStride: bad));
            OutOfRange("outputStride", (o, l) => Forward(o, l, outputStride: bad));
            OutOfRange("qStride", (o, l) => Paged(o, l, qStride: bad));
            OutOfRange("outputStride", (o, l) => Paged(o, l, outputStride: bad));
        }
        OutOfRange("qStride", (o, l) => Forward(o, l, qStride: QRow - 1));
        // Strides one longer than a row need (tokens - 1) more elements.
        Throws("q", (o, l) => Forward(o, l, qStride: QRow + 1));
        Throws("k", (o, l) => Forward(o, l, kStride: KvRow + 1));
        Throws("v", (o, l) => Forward(o, l, vStride: KvRow + 1));
        Throws("output", (o, l) => Forward(o, l, outputStride: QRow + 20));
        Throws("q", (o, l) => Paged(o, l, qStride: QRow + 1));
    }

    [Fact]
    public void AlibiAndBiasAreChecked()
    {
        foreach (int length in new[] { 1, Heads - 1, Heads + 1 })
        {
            Throws("alibiSlopes", (o, l) => Forward(o, l, alibi: new float[length]));
            Throws("alibiSlopes", (o, l) => Paged(o, l, alibi: new float[length]));
        }
        // The largest index read: head 3, token 4 (sequence 1: keys 0..1) = 3 x 50 + 4 x 10 + 1 = 191.
        const int headStride = 50, rowStride = 10, needed = 192;
        foreach (int bad in new[] { 0, -1, int.MinValue })
        {
            OutOfRange("biasRowStride", (o, l) => Forward(o, l, bias: new float[needed], biasHeadStride: headStride, biasRowStride: bad));
            OutOfRange("biasRowStride", (o, l) => Paged(o, l, bias: new float[needed], biasHeadStride: headStride, biasRowStride: bad));
        }
        OutOfRange("biasHeadStride", (o, l) => Forward(o, l, bias: new float[needed], biasHeadStride: -1, biasRowStride: rowStride));
        OutOfRange("biasHeadStride", (o, l) => Paged(o, l, bias: new float[needed], biasHeadStride: -1, biasRowStride: rowStride));
        Throws("bias", (o, l) => Forward(o, l, bias: new float[needed - 1], biasHeadStride: headStride, biasRowStride: rowStride));
        Throws("bias", (o, l) => Paged(o, l, bias: new float[needed - 1], biasHeadStride: headStride, biasRowStride: rowStride));
        // One bias row for every head, a row per query token, keys packed: token 2 reads 2 + 0..3 and token 4 reads 4 + 0..1, so 6
        // elements, though the last token's row start plus the longest sequence's keys would be 8.
        Throws("bias", (o, l) => Forward(o, l, bias: new float[5], biasHeadStride: 0, biasRowStride: 1));
        Throws("bias", (o, l) => Paged(o, l, bias: new float[5], biasHeadStride: 0, biasRowStride: 1));
        float[] output = Poisoned.Filled(TotalQ * QRow + 64), lse = Poisoned.Filled(TotalQ * Heads + 8);
        Forward(output, lse, bias: new float[needed], biasHeadStride: headStride, biasRowStride: rowStride);
        Forward(output, lse, bias: new float[6], biasHeadStride: 0, biasRowStride: 1);
        Paged(output, lse, bias: new float[6], biasHeadStride: 0, biasRowStride: 1);
        Paged(output, lse, bias: new float[needed], biasHeadStride: headStride, biasRowStride: rowStride);
        // Strides without a bias are ignored.
        Forward(output, lse, biasHeadStride: -5, biasRowStride: -5);
    }

    [Fact]
    public void OverlapsNameTheOutput()
    {
        float[] shared = Poisoned.Filled(2 * TotalQ * QRow + 2 * TotalK * KvRow + 64);
        Throws("output", (o, l) => Attention.Forward<float>(shared.AsSpan(0, TotalQ * QRow), s_k, s_v, shared.AsSpan(TotalQ * QRow - 1, TotalQ * QRow),
                                                            s_cuQ, s_cuK, Heads, KvHeads, D));
        Throws("output", (o, l) => Attention.Forward<float>(s_q, shared.AsSpan(0, TotalK * KvRow), s_v, shared.AsSpan(10, TotalQ * QRow),
                                                            s_cuQ, s_cuK, Heads, KvHeads, D));
        Throws("output", (o, l) => Attention.Forward<float>(s_q, s_k, shared.AsSpan(0, TotalK * KvRow), shared.AsSpan(TotalK * KvRow - 1, TotalQ * QRow),
                                                            s_cuQ, s_cuK, Heads, KvHeads, D));
        // In place on q is not allowed either: rows are read while others are written.
        Throws("output", (o, l) => Attention.Forward<float>(shared.AsSpan(0, TotalQ * QRow), s_k, s_v, shared.AsSpan(0, TotalQ * QRow),
                                                            s_cuQ, s_cuK, Heads, KvHeads, D));
        Throws("output", (o, l) => Forward(o, l, bias: o.AsSpan(8, 200), biasRowStride: 10, biasHeadStride: 50));
        Throws("output", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, o, s_cuQ, s_cuK, Heads, KvHeads, D, alibiSlopes: o.AsSpan(0, Heads)));
        Throws("output", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, o, s_cuQ, s_cuK, Heads, KvHeads, D, lse: o.AsSpan(TotalQ * QRow - 1, TotalQ * Heads)));
        Throws("lse", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, o, s_cuQ, s_cuK, Heads, KvHeads, D, lse: l,
                                                         alibiSlopes: l.AsSpan(TotalQ * Heads, Heads)));
        Throws("lse", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, o, s_cuQ, s_cuK, Heads, KvHeads, D, lse: shared.AsSpan(0, TotalQ * Heads),
                                                         bias: shared.AsSpan(3, 200), biasRowStride: 10, biasHeadStride: 50));
        Throws("lse", (o, l) => Attention.Forward<float>(shared.AsSpan(0, TotalQ * QRow), s_k, s_v, o, s_cuQ, s_cuK, Heads, KvHeads, D,
                                                         lse: shared.AsSpan(5, TotalQ * Heads)));
        // Index arrays written through the output (reinterpreted memory).
        int[] indices = new int[64];
        indices[0] = 0; indices[1] = 3; indices[2] = 5;
        indices[50] = 0; indices[51] = 4; indices[52] = 6;
        Throws("output", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, System.Runtime.InteropServices.MemoryMarshal.Cast<int, float>(indices.AsSpan(0, 48)),
                                                            indices.AsSpan(0, 3), s_cuK, 1, 1, D));
        Throws("output", (o, l) => Attention.Forward<float>(s_q, s_k, s_v, System.Runtime.InteropServices.MemoryMarshal.Cast<int, float>(indices.AsSpan(4, 48)),
                                                            s_cuQ, indices.AsSpan(50, 3), 1, 1, D));
        // The paged form: the caches.
        float[] caches = Poisoned.Filled(2 * Cache + TotalQ * QRow);
        Throws("output", (o, l) => Attention.ForwardPaged<float>(s_q, caches.AsSpan(0, Cache), s_valueCache, s_layout, s_tables, MaxBlocks,
                                                                 s_seqLensK, caches.AsSpan(Cache - 1, TotalQ * QRow), s_cuQ, Heads));
        Throws("output", (o, l) => Attention.ForwardPaged<float>(s_q, s_keyCache, caches.AsSpan(0, Cache), s_layout, s_tables, MaxBlocks,
                                                                 s_seqLensK, caches.AsSpan(4, TotalQ * QRow), s_cuQ, Heads));
        Throws("valueCache", (o, l) => Attention.ForwardPaged<float>(s_q, caches.AsSpan(0, Cache), caches.AsSpan(Cache - 1, Cache), s_layout,
                                                                     s_tables, MaxBlocks, s_seqLensK, o, s_cuQ, Heads));
        Throws("lse", (o, l) => Attention.ForwardPaged<float>(s_q, caches.AsSpan(0, Cache), s_valueCache, s_layout, s_tables, MaxBlocks,
                                                              s_seqLensK, o, s_cuQ, Heads, lse: caches.AsSpan(7, TotalQ * Heads)));
    }

    [Fact]
    public void PagedShapesNameTheirParameter()
    {
        Throws("keyCache", (o, l) => Paged(o, l, keyCache: s_keyCache.AsSpan(1)));
        Throws("keyCache", (o, l) => Paged(o, l, keyCache: new float[Cache + 1]));
        Throws("valueCache", (o, l) => Paged(o, l, valueCache: s_valueCache.AsSpan(0, Cache - 1)));
        Throws("seqLensK", (o, l) => Paged(o, l, seqLensK: new[] { 4 }));
        Throws("seqLensK", (o, l) => Paged(o, l, seqLensK: new[] { 4, 2, 0 }));
        OutOfRange("maxBlocksPerSeq", (o, l) => Paged(o, l, maxBlocks: -1));
        Throws("blockTables", (o, l) => Paged(o, l, tables: new[] { 3, 1, 0 }));
        Throws("blockTables", (o, l) => Paged(o, l, maxBlocks: 3));
    }

    [Fact]
    public void NativeIndexChecksNameTheArgument()
    {
        // Offsets: not from 0, decreasing, negative (the bad element last, so a kernel that wrote as it checked would be caught).
        NativeThrows("cu_seqlens_q", "[0]", "cuSeqlensQ", (o, l) => Forward(o, l, cuQ: new[] { 1, 3, 5 }));
        NativeThrows("cu_seqlens_q", "[2]", "cuSeqlensQ", (o, l) => Forward(o, l, cuQ: new[] { 0, 5, 4 }, cuK: new[] { 0, 4, 6 }));
        NativeThrows("cu_seqlens_q", "[2]", "cuSeqlensQ", (o, l) => Forward(o, l, cuQ: new[] { 0, 3, -1 }));
        NativeThrows("cu_seqlens_k", "[2]", "cuSeqlensK", (o, l) => Forward(o, l, cuK: new[] { 0, 4, 3 }));
        NativeThrows("cu_seqlens_k", "[0]", "cuSeqlensK", (o, l) => Forward(o, l, cuK: new[] { -1, 4, 6 }));
        NativeThrows("cu_seqlens_q", "[2]", "cuSeqlensQ", (o, l) => Paged(o, l, cuQ: new[] { 0, 5, 3 }));
        // Key lengths beyond the table, negative; block ids outside the cache, in the last entry used.
        NativeThrows("seqlens_k", "[1]", "seqLensK", (o, l) => Paged(o, l, seqLensK: new[] { 4, 5 }));
        NativeThrows("seqlens_k", "[1]", "seqLensK", (o, l) => Paged(o, l, seqLensK: new[] { 4, -1 }));
        NativeThrows("block_tables", "[1][0]", "blockTables", (o, l) => Paged(o, l, tables: new[] { 3, 1, 4, 0 }));
        NativeThrows("block_tables", "[0][1]", "blockTables", (o, l) => Paged(o, l, tables: new[] { 3, -1, 0, 0 }));
        // Unused entries may hold anything.
        float[] output = Poisoned.Filled(TotalQ * QRow + 64), lse = Poisoned.Filled(TotalQ * Heads + 8);
        Paged(output, lse, tables: new[] { 3, 1, 0, int.MinValue }, seqLensK: new[] { 4, 1 });
    }
}
