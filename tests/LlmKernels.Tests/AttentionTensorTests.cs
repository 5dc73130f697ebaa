using System.Numerics.Tensors;

namespace LlmKernels.Tests;

/// <summary>
/// The tensor overloads of Attention.Forward and ForwardPaged: bit for bit what the span overloads give for the same memory
/// (float, Half, BFloat16; GQA; lse; views into a fused qkv tensor, a strided output, a single token), and every shape or
/// stride a tensor can get wrong throws an <see cref="ArgumentException"/> naming the tensor, before anything is written.
/// </summary>
public sealed class AttentionTensorTests
{
    // 3 sequences: 5 queries over 5 keys, none over 4, 12 over 31 (chunked prefill). 8 heads over 2 kv heads of 64.
    private const int Heads = 8, KvHeads = 2, D = 64, QRow = Heads * D, KvRow = KvHeads * D, TotalQ = 17, TotalK = 40;
    private static readonly int[] s_cuQ = [0, 5, 5, 17], s_cuK = [0, 5, 9, 40];
    private static readonly AttentionOptions s_causal = new() { Causal = true };

    [Fact]
    public void FloatEqualsSpanOverload() => EqualsSpanOverload<float>();

    [Fact]
    public void HalfEqualsSpanOverload() => EqualsSpanOverload<System.Half>();

    [Fact]
    public void BFloat16EqualsSpanOverload() => EqualsSpanOverload<LlmKernels.BFloat16>();

    private static void EqualsSpanOverload<T>() where T : unmanaged
    {
        var random = new Random(17);
        T[] q = Element.Random<T>(random, TotalQ * QRow, -2, 2), k = Element.Random<T>(random, TotalK * KvRow, -2, 2);
        T[] v = Element.Random<T>(random, TotalK * KvRow, -2, 2);
        T[] expected = new T[TotalQ * QRow], actual = new T[TotalQ * QRow];
        float[] expectedLse = new float[TotalQ * Heads], actualLse = new float[TotalQ * Heads];
        // One context for both: each ISA sums in its own order.
        using var context = new CpuContext(new CpuContextOptions { ThreadCount = 2 });
        Attention.Forward<T>(q, k, v, expected, s_cuQ, s_cuK, Heads, KvHeads, D, s_causal, lse: expectedLse, context: context);
        Attention.Forward<T>(new ReadOnlyTensorSpan<T>(q, [TotalQ, Heads, D]), new ReadOnlyTensorSpan<T>(k, [TotalK, KvHeads, D]),
                             new ReadOnlyTensorSpan<T>(v, [TotalK, KvHeads, D]), new TensorSpan<T>(actual, [TotalQ, Heads, D]),
                             s_cuQ, s_cuK, s_causal, lse: new TensorSpan<float>(actualLse, [TotalQ, Heads]), context: context);
        Tolerance.AssertBitwiseEqual<T>(expected, actual, $"tensor Forward<{typeof(T).Name}> output");
        Tolerance.AssertBitwiseEqual<float>(expectedLse, actualLse, $"tensor Forward<{typeof(T).Name}> lse");

        // The paged form, its caches as [numBlocks, blockSize, numKvHeads, headDim]: sequence s's keys in blocks from 3 * s on.
        var layout = new PagedKvCacheLayout(NumBlocks: 9, BlockSize: 16, NumKvHeads: KvHeads, HeadDim: D);
        T[] keyCache = new T[layout.CacheElements], valueCache = new T[layout.CacheElements];
        long[] slots = new long[TotalK];
        for (int s = 0; s < 3; s++)
            for (int j = s_cuK[s]; j < s_cuK[s + 1]; j++)
                slots[j] = 3 * 16 * s + (j - s_cuK[s]);
        KvCache.Write<T>(keyCache, valueCache, layout, k, v, slots);
        int[] tables = [0, 1, 2, 3, 4, 5, 6, 7, 8], seqLensK = [5, 4, 31];
        T[] paged = new T[TotalQ * QRow];
        float[] pagedLse = new float[TotalQ * Heads];
        ReadOnlySpan<nint> cacheShape = [9, 16, KvHeads, D];
        Attention.ForwardPaged<T>(new ReadOnlyTensorSpan<T>(q, [TotalQ, Heads, D]), new ReadOnlyTensorSpan<T>(keyCache, cacheShape),
                                  new ReadOnlyTensorSpan<T>(valueCache, cacheShape), tables, 3, seqLensK,
                                  new TensorSpan<T>(paged, [TotalQ, Heads, D]), s_cuQ, s_causal,
                                  lse: new TensorSpan<float>(pagedLse, [TotalQ, Heads]), context: context);
        Tolerance.AssertBitwiseEqual<T>(expected, paged, $"tensor ForwardPaged<{typeof(T).Name}> output");
        Tolerance.AssertBitwiseEqual<float>(expectedLse, pagedLse, $"tensor ForwardPaged<{typeof(T).Name}> lse");
    }

    /// <summary>q, k and v as views into one fused <c>[tokens, qRow + 2 kvRow + 3]</c> tensor, and the output a view with padding
    /// after each token, give what separate dense tensors give; the padding keeps its poison.</summary>
    [Fact]
    public void FusedQkvViewsEqualDenseTensors()
    {
        var random = new Random(23);
        const int stride = QRow + 2 * KvRow + 3, outStride = QRow + 5;
        float[] qkv = Element.Random<float>(random, TotalK * stride, -2, 2);
        float[] q = new float[TotalQ * QRow], k = new float[TotalK * KvRow], v = new float[TotalK * KvRow];
        for (int t = 0; t < TotalK; t++)
        {
            if (t < TotalQ)
                qkv.AsSpan(t * stride, QRow).CopyTo(q.AsSpan(t * QRow));
            qkv.AsSpan(t * stride + QRow, KvRow).CopyTo(k.AsSpan(t * KvRow));
            qkv.AsSpan(t * stride + QRow + KvRow, KvRow).CopyTo(v.AsSpan(t * KvRow));
        }
        using var context = new CpuContext(new CpuContextOptions { ThreadCount = 2 });
        float[] dense = new float[TotalQ * QRow], denseLse = new float[TotalQ * Heads];
        Attention.Forward<float>(new ReadOnlyTensorSpan<float>(q, [TotalQ, Heads, D]), new ReadOnlyTensorSpan<float>(k, [TotalK, KvHeads, D]),
                                 new ReadOnlyTensorSpan<float>(v, [TotalK, KvHeads, D]), new TensorSpan<float>(dense, [TotalQ, Heads, D]),
                                 s_cuQ, s_cuK, s_causal, lse: new TensorSpan<float>(denseLse, [TotalQ, Heads]), context: context);

        ReadOnlyTensorSpan<float> qView = View(qkv, stride, 0, TotalQ, Heads), kView = View(qkv, stride, QRow, TotalK, KvHeads);
        ReadOnlyTensorSpan<float> vView = View(qkv, stride, QRow + KvRow, TotalK, KvHeads);
        float[] padded = Poisoned.Filled(TotalQ * outStride), viewLse = new float[TotalQ * Heads];
        Attention.Forward<float>(qView, kView, vView, new TensorSpan<float>(padded, 0, [TotalQ, Heads, D], [outStride, D, 1]), s_cuQ, s_cuK,
                                 s_causal, lse: new TensorSpan<float>(viewLse, [TotalQ, Heads]), context: context);
        for (int t = 0; t < TotalQ; t++)
        {
            Tolerance.AssertBitwiseEqual<float>(dense.AsSpan(t * QRow, QRow), padded.AsSpan(t * outStride, QRow), $"fused view token {t}");
            Poisoned.Unchanged(padded[(t * outStride + QRow)..((t + 1) * outStride)], $"output padding after token {t}");
        }
        Tolerance.AssertBitwiseEqual<float>(denseLse, viewLse, "fused view lse");

        // One token (decode): System.Numerics.Tensors gives a dimension of length 1 stride 0, which is not an error.
        float[] one = new float[QRow], oneDense = new float[QRow];
        int[] cuOne = [0, 1], cuKOne = [0, 7];
        Attention.Forward<float>(View(qkv, stride, 0, 1, Heads), View(qkv, stride, QRow, 7, KvHeads),
                                 View(qkv, stride, QRow + KvRow, 7, KvHeads),
                                 new TensorSpan<float>(one, [1, Heads, D]), cuOne, cuKOne, context: context);
        Attention.Forward<float>(q.AsSpan(0, QRow), k, v, oneDense, cuOne, cuKOne, Heads, KvHeads, D, context: context);
        Tolerance.AssertBitwiseEqual<float>(oneDense, one, "one-token view");
    }

    /// <summary>Columns <c>[start, start + heads * D)</c> of the first <paramref name="tokens"/> rows of the fused
    /// <c>[TotalK, stride]</c> tensor, as <c>[tokens, heads, D]</c>. System.Numerics.Tensors 10.0 takes only stride 0 for a
    /// dimension of length 1 (it refuses [1, h, d] with a token stride, in memory that holds it), as its own shapes have it.</summary>
    private static ReadOnlyTensorSpan<float> View(float[] qkv, int stride, int start, int tokens, int heads) =>
        new(qkv, start, [tokens, heads, D], [tokens == 1 ? 0 : stride, D, 1]);

    // The bad shapes: small tensors over 2 sequences, 3 queries over 4 keys and 2 over 2; 4 heads over 2 kv heads of 8.
    private const int H = 4, Kv = 2, Dim = 8, Tq = 5, Tk = 6;
    private static readonly int[] s_smallCuQ = [0, 3, 5], s_smallCuK = [0, 4, 6];
    private static readonly float[] s_buffer = Enumerable.Range(0, 4096).Select(i => MathF.Sin(i)).ToArray();
    private static readonly nint[] s_cacheShape = [4, 2, Kv, Dim];

    /// <summary>A tensor over <c>s_buffer</c> from <paramref name="start"/>: dense, or with <paramref name="strides"/>.</summary>
    private static ReadOnlyTensorSpan<float> In(ReadOnlySpan<nint> lengths, ReadOnlySpan<nint> strides = default, int start = 0) =>
        strides.IsEmpty ? new(s_buffer.AsSpan(start, (int)Product(lengths)), lengths) : new(s_buffer, start, lengths, strides);

    private static nint Product(ReadOnlySpan<nint> lengths)
    {
        nint product = 1;
        foreach (nint length in lengths)
            product *= length;
        return product;
    }

    private delegate void Call(TensorSpan<float> output, TensorSpan<float> lse);

    /// <summary>Runs <paramref name="call"/> on a poisoned output (a dense <c>[Tq, H, Dim]</c>, or <paramref name="outputLengths"/>
    /// and <paramref name="outputStrides"/> over a larger buffer) and lse, and asserts an <see cref="ArgumentException"/> naming
    /// <paramref name="paramName"/>, with nothing written.</summary>
    private static void Throws(string paramName, Call call, nint[]? outputLengths = null, nint[]? outputStrides = null,
                               nint[]? lseLengths = null, nint[]? lseStrides = null)
    {
        float[] output = Poisoned.Filled(4096), lse = Poisoned.Filled(256);
        var e = Assert.Throws<ArgumentException>(() =>
            call(outputStrides is null ? new TensorSpan<float>(output.AsSpan(0, (int)Product(outputLengths ?? [Tq, H, Dim])), outputLengths ?? [Tq, H, Dim])
                                       : new TensorSpan<float>(output, 0, outputLengths!, outputStrides),
                 lseStrides is null ? new TensorSpan<float>(lse.AsSpan(0, (int)Product(lseLengths ?? [Tq, H])), lseLengths ?? [Tq, H])
                                    : new TensorSpan<float>(lse, 0, lseLengths!, lseStrides)));
        Assert.Equal(paramName, e.ParamName);
        Poisoned.Unchanged(output, "output");
        Poisoned.Unchanged(lse, "lse");
    }

    [Fact]
    public void SmallValidCallsWork()
    {
        float[] output = new float[Tq * H * Dim], lse = new float[Tq * H];
        Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]), new TensorSpan<float>(output, [Tq, H, Dim]),
                                 s_smallCuQ, s_smallCuK, lse: new TensorSpan<float>(lse, [Tq, H]));
        Assert.True(Array.TrueForAll(output, float.IsFinite));
        // No lse, and more tokens than the offsets use (CUDA-graph padding): the rest is neither read nor written.
        float[] padded = Poisoned.Filled((Tq + 2) * H * Dim);
        Attention.Forward<float>(In([Tq + 2, H, Dim]), In([Tk + 1, Kv, Dim]), In([Tk + 1, Kv, Dim]),
                                 new TensorSpan<float>(padded, [Tq + 2, H, Dim]), s_smallCuQ, s_smallCuK);
        Assert.Equal(output, padded[..(Tq * H * Dim)]);
        Poisoned.Unchanged(padded[(Tq * H * Dim)..], "tokens past cuSeqlensQ[^1]");
    }

    [Fact]
    public void BadQ()
    {
        Throws("q", (o, l) => Attention.Forward<float>(In([Tq, H * Dim]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("q", (o, l) => Attention.Forward<float>(In([Tq, 0, Dim]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("q", (o, l) => Attention.Forward<float>(In([1, 1, 300]), In([Tk, 1, 300]), In([Tk, 1, 300]), o, [0, 1], [0, 1]));
        // Heads not head_dim apart, elements not adjacent, tokens closer than a row (here broadcast, stride 0).
        Throws("q", (o, l) => Attention.Forward<float>(In([Tq, H, Dim], [H * Dim + 8, Dim + 1, 1]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]),
                                                       o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("q", (o, l) => Attention.Forward<float>(In([Tq, H, Dim], [2 * H * Dim, 2 * Dim, 2]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]),
                                                       o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("q", (o, l) => Attention.Forward<float>(In([Tq, H, Dim], [0, Dim, 1]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]),
                                                       o, s_smallCuQ, s_smallCuK, lse: l));
        // Fewer tokens than cuSeqlensQ[^1].
        Throws("q", (o, l) => Attention.Forward<float>(In([Tq - 1, H, Dim]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]), o, s_smallCuQ, s_smallCuK),
               outputLengths: [Tq - 1, H, Dim]);
    }

    [Fact]
    public void BadKAndV()
    {
        Throws("k", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, Dim, 1]), In([Tk, Kv, Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("k", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, 2 * Dim]), In([Tk, Kv, 2 * Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("k", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, 3, Dim]), In([Tk, 3, Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("k", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, Dim], [2 * Kv * Dim, 2 * Dim, 2]), In([Tk, Kv, Dim]),
                                                       o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("k", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk - 1, Kv, Dim]), In([Tk - 1, Kv, Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("v", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, Dim]), In([Tk + 1, Kv, Dim]), o, s_smallCuQ, s_smallCuK, lse: l));
        Throws("v", (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim], [2 * Kv * Dim, 2 * Dim, 1]),
                                                       o, s_smallCuQ, s_smallCuK, lse: l));
    }

    [Fact]
    public void BadOutputAndLse()
    {
        Call call = (o, l) => Attention.Forward<float>(In([Tq, H, Dim]), In([Tk, Kv, Dim]), In([Tk, Kv, Dim]), o, s_smallCuQ, s_smallCuK, lse: l);
        Throws("output", call, outputLengths: [Tq + 1, H, Dim]);
        Throws("output", call, outputLengths: [Tq, H * Dim]);
        Throws("output", call, outputLengths: [Tq, H, Dim], outputStrides: [2 * H * Dim, 2 * Dim, 2]);
        Throws("output", call, outputLengths: [Tq, H, Dim], outputStrides: [2 * H * Dim, 2 * Dim, 1]);
        Throws("lse", call, lseLengths: [Tq * H]);
        Throws("lse", call, lseLengths: [Tq, H - 1]);
        Throws("lse", call, lseLengths: [Tq + 1, H]);
        Throws("lse", call, lseLengths: [Tq, H], lseStrides: [H + 1, 1]);
        Throws("lse", call, lseLengths: [Tq, H], lseStrides: [2 * H, 2]);
        // The output overlapping q is the span overload's check, with the same name.
        float[] shared = new float[Tq * H * Dim];
        var e = Assert.Throws<ArgumentException>(() => Attention.Forward<float>(new ReadOnlyTensorSpan<float>(shared, [Tq, H, Dim]), In([Tk, Kv, Dim]),
                                                                                In([Tk, Kv, Dim]), new TensorSpan<float>(shared, [Tq, H, Dim]),
                                                                                s_smallCuQ, s_smallCuK));
        Assert.Equal("output", e.ParamName);
    }

    [Fact]
    public void BadCaches()
    {
        int[] tables = [3, 1, 0, 2], seqLensK = [4, 2];
        Call Paged(ReadOnlySpan<nint> keyShape, ReadOnlySpan<nint> valueShape, nint[]? keyStrides = null)
        {
            nint[] keyLengths = keyShape.ToArray(), valueLengths = valueShape.ToArray();
            return (o, l) => Attention.ForwardPaged<float>(In([Tq, H, Dim]), In(keyLengths, keyStrides), In(valueLengths, start: 2048), tables, 2, seqLensK,
                                                           o, s_smallCuQ, lse: l);
        }
        float[] output = new float[Tq * H * Dim];
        Attention.ForwardPaged<float>(In([Tq, H, Dim]), In(s_cacheShape), In(s_cacheShape, start: 2048), tables, 2, seqLensK,
                                      new TensorSpan<float>(output, [Tq, H, Dim]), s_smallCuQ);
        Throws("keyCache", Paged([4, 2, Kv * Dim], [4, 2, Kv * Dim]));
        Throws("keyCache", Paged([0, 2, Kv, Dim], [0, 2, Kv, Dim]));
        Throws("keyCache", Paged([4, 2, Kv, 2 * Dim], [4, 2, Kv, 2 * Dim]));
        Throws("keyCache", Paged([4, 2, 3, Dim], [4, 2, 3, Dim]));
        Throws("keyCache", Paged(s_cacheShape, s_cacheShape, keyStrides: [2 * Kv * Dim + 1, Kv * Dim, Dim, 1]));
        Throws("valueCache", Paged(s_cacheShape, [5, 2, Kv, Dim]));
        Throws("q", (o, l) => Attention.ForwardPaged<float>(In([Tq, H, Dim], [2 * H * Dim, 2 * Dim, 2]), In(s_cacheShape), In(s_cacheShape, start: 2048), tables, 2,
                                                            seqLensK, o, s_smallCuQ, lse: l));
        Throws("output", Paged(s_cacheShape, s_cacheShape), outputLengths: [Tq, H, Dim + 1]);
        Throws("lse", Paged(s_cacheShape, s_cacheShape), lseLengths: [Tq, 1]);
    }
}
