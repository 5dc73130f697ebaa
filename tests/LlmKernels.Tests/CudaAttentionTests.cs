using static LlmKernels.Tests.CudaCompare;

namespace LlmKernels.Tests;

/// <summary>
/// Attention on a CUDA device against the CPU API on the same inputs: prefill (causal, GQA, ragged sequences) and decode over
/// contiguous keys, and over a paged cache, with the log-sum-exp; bad offsets reported at the next synchronisation. The argument
/// checks run now; the rest once the loaded CUDA library has lk_cuda_attention (the attention branch).
/// </summary>
/// <remarks>Tolerance (inputs in [-1, 1]): two ulps of the element type plus 1e-3, and for f32 2^-7: the prefill kernel rounds f32
/// operands to bf16 for the tensor cores, and P to bf16 before P V (docs/cuda.md), so an f32 output carries bf16's relative error
/// over the row of values. All far below an indexing mistake's, which is off by O(1).</remarks>
[Collection(CudaCollection.Name)]
public sealed class CudaAttentionTests
{
    private const int Heads = 4, KvHeads = 2, HeadDim = 64;

    private static double Atol<T>() => typeof(T) == typeof(float) ? 1.0 / 128 : 1e-3;

    /// <summary>Decode (at most 8 queries a sequence: flash-decoding) and prefill (the tensor-core kernel), with and without the
    /// bounds given.</summary>
    public static TheoryData<string> ContiguousCases() => new() { "decode f32", "decode f16", "decode bf16", "decode f16 long", "prefill f32", "prefill bf16", "prefill f16 bounds" };

    [CudaKernelTheory("lk_cuda_attention")]
    [MemberData(nameof(ContiguousCases))]
    public void ContiguousAttentionMatchesTheCpu(string name)
    {
        switch (name)
        {
            case "decode f32": Check<float>([5, 3], [9, 3], causal: true, maxSeqlenQ: 0); break;
            case "decode f16": Check<Half>([5, 3], [9, 3], causal: false, maxSeqlenQ: 5); break;
            case "decode bf16": Check<BFloat16>([1, 1, 1], [17, 1, 40], causal: true, maxSeqlenQ: 1); break;
            case "decode f16 long": Check<Half>([1, 1], [64, 130], causal: true, maxSeqlenQ: 0); break;
            case "prefill f32": Check<float>([20, 9], [20, 33], causal: true, maxSeqlenQ: 0); break;
            case "prefill bf16": Check<BFloat16>([70, 1, 12], [70, 5, 100], causal: true, maxSeqlenQ: 0); break;
            case "prefill f16 bounds": Check<Half>([33, 17], [33, 80], causal: false, maxSeqlenQ: 33); break;
        }

        static void Check<T>(int[] queries, int[] keys, bool causal, int maxSeqlenQ) where T : unmanaged
        {
            int[] cuQ = Offsets(queries), cuK = Offsets(keys);
            int totalQ = cuQ[^1], totalK = cuK[^1], qRow = Heads * HeadDim, kvRow = KvHeads * HeadDim;
            var random = new Random(51);
            T[] q = Element.Random<T>(random, totalQ * qRow, -1f, 1f), k = Element.Random<T>(random, totalK * kvRow, -1f, 1f);
            T[] v = Element.Random<T>(random, totalK * kvRow, -1f, 1f);
            var options = new AttentionOptions { Causal = causal };
            var want = new T[totalQ * qRow];
            var wantLse = new float[totalQ * Heads];
            Attention.Forward<T>(q, k, v, want, cuQ, cuK, Heads, KvHeads, HeadDim, options, lse: wantLse);

            using DeviceBuffer<T> dq = new(q), dk = new(k), dv = new(v), dout = new(want.Length);
            using DeviceBuffer<int> dcq = new(cuQ), dck = new(cuK);
            using DeviceBuffer<float> dlse = new(wantLse.Length);
            using var stream = new CudaStream();
            Attention.Forward<T>(dq, dk, dv, dout, dcq, dck, Heads, KvHeads, HeadDim, options, lse: dlse, maxSeqlenQ: maxSeqlenQ,
                                 maxSeqlenK: maxSeqlenQ == 0 ? 0 : keys.Max(), stream: stream);
            stream.Synchronize();
            string what = $"Attention<{typeof(T).Name}> q {string.Join(",", queries)} k {string.Join(",", keys)} causal {causal}";
            Close<T>(want, dout.ToArray(), 2, Atol<T>(), what);
            Close<float>(wantLse, dlse.ToArray(), 2, Atol<T>(), what + " lse");
        }
    }

    [CudaKernelTheory("lk_cuda_attention")]
    [InlineData("decode")]
    [InlineData("prefill")]
    public void PagedAttentionMatchesTheCpu(string name)
    {
        if (name == "decode")
        {
            Check<BFloat16>([1, 1], [21, 7], maxSeqlenQ: 1);
            Check<float>([4, 2], [21, 7], maxSeqlenQ: 0);
        }
        else
        {
            Check<Half>([21, 12], [21, 60], maxSeqlenQ: 0);
            Check<float>([16, 9], [30, 9], maxSeqlenQ: 16);
        }

        static void Check<T>(int[] queries, int[] keys, int maxSeqlenQ) where T : unmanaged
        {
            var layout = new PagedKvCacheLayout(NumBlocks: 8, BlockSize: 16, NumKvHeads: KvHeads, HeadDim: HeadDim);
            int[] cuQ = Offsets(queries);
            int totalQ = cuQ[^1], qRow = Heads * HeadDim;
            var random = new Random(52);
            T[] q = Element.Random<T>(random, totalQ * qRow, -1f, 1f);
            T[] keyCache = Element.Random<T>(random, (int)layout.CacheElements, -1f, 1f);
            T[] valueCache = Element.Random<T>(random, (int)layout.CacheElements, -1f, 1f);
            int[] tables = [3, 0, 6, 5, 7, 1, 2, 4];
            var options = new AttentionOptions { Causal = true };
            var want = new T[totalQ * qRow];
            var wantLse = new float[totalQ * Heads];
            Attention.ForwardPaged<T>(q, keyCache, valueCache, layout, tables, 4, keys, want, cuQ, Heads, options, lse: wantLse);

            using DeviceBuffer<T> dq = new(q), dkc = new(keyCache), dvc = new(valueCache), dout = new(want.Length);
            using DeviceBuffer<int> dt = new(tables), dsk = new(keys), dcq = new(cuQ);
            using DeviceBuffer<float> dlse = new(wantLse.Length);
            Attention.ForwardPaged<T>(dq, dkc, dvc, layout, dt, 4, dsk, dout, dcq, Heads, options, lse: dlse, maxSeqlenQ: maxSeqlenQ,
                                      maxSeqlenK: maxSeqlenQ == 0 ? 0 : keys.Max());
            string what = $"ForwardPaged<{typeof(T).Name}>";
            Close<T>(want, dout.ToArray(), 2, Atol<T>(), what);
            Close<float>(wantLse, dlse.ToArray(), 2, Atol<T>(), what + " lse");
        }
    }

    [CudaKernelFact("lk_cuda_attention")]
    public void BadOffsetsAreReportedAtSynchronize()
    {
        int qRow = Heads * HeadDim, kvRow = KvHeads * HeadDim;
        using DeviceBuffer<float> q = new(new float[8 * qRow]), k = new(new float[8 * kvRow]), v = new(new float[8 * kvRow]), output = new(8 * qRow);
        using DeviceBuffer<int> decreasing = new([0, 5, 3]), fine = new([0, 4, 8]);
        using var stream = new CudaStream();
        // Prefill (more than 8 queries a sequence) and decode (at most 8) check the offsets alike.
        foreach (int maxSeqlenQ in new[] { 16, 8 })
        {
            Attention.Forward<float>(q, k, v, output, decreasing, fine, Heads, KvHeads, HeadDim, maxSeqlenQ: maxSeqlenQ, maxSeqlenK: 8, stream: stream);
            var e = Assert.Throws<ArgumentException>(stream.Synchronize);
            Assert.Equal("cuSeqlensQ", e.ParamName);
            Assert.Contains("cu_seqlens_q[2]", e.Message);
            // A sequence longer than the maxSeqlenK given.
            Attention.Forward<float>(q, k, v, output, fine, fine, Heads, KvHeads, HeadDim, maxSeqlenQ: maxSeqlenQ, maxSeqlenK: 3, stream: stream);
            Assert.Equal("cuSeqlensK", Assert.Throws<ArgumentException>(stream.Synchronize).ParamName);
        }
    }

    private static int[] Offsets(int[] lengths)
    {
        var offsets = new int[lengths.Length + 1];
        for (int i = 0; i < lengths.Length; i++)
            offsets[i + 1] = offsets[i] + lengths[i];
        return offsets;
    }

    [CudaFact]
    public void BadArgumentsAreNamedAsOnTheCpu()
    {
        int qRow = Heads * HeadDim, kvRow = KvHeads * HeadDim;
        var layout = new PagedKvCacheLayout(4, 16, KvHeads, HeadDim);
        using DeviceBuffer<Half> q = new(8 * qRow), k = new(8 * kvRow), v = new(8 * kvRow), output = new(8 * qRow);
        using DeviceBuffer<Half> keyCache = new(layout.CacheElements), valueCache = new(layout.CacheElements);
        using DeviceBuffer<int> cu = new(3), cu2 = new(2), lengths = new(2), tables = new(8);
        using DeviceBuffer<float> alibi = new(3), lse = new(8 * Heads);
        Named("numKvHeads", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, 3, HeadDim));
        Named("numHeads", () => Attention.Forward<Half>(q, k, v, output, cu, cu, 0, KvHeads, HeadDim));
        Named("headDim", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, KvHeads, 257));
        Named("cuSeqlensK", () => Attention.Forward<Half>(q, k, v, output, cu, cu2, Heads, KvHeads, HeadDim));
        Named("cuSeqlensQ", () => Attention.Forward<Half>(q, k, v, output, default, default, Heads, KvHeads, HeadDim));
        Named("alibiSlopes", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, KvHeads, HeadDim, alibiSlopes: alibi));
        Named("biasRowStride", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, KvHeads, HeadDim, bias: lse));
        Named("qStride", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, KvHeads, HeadDim, qStride: 3));
        Named("maxSeqlenQ", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, KvHeads, HeadDim, maxSeqlenQ: -1));
        Named("options", () => Attention.Forward<Half>(q, k, v, output, cu, cu, Heads, KvHeads, HeadDim, new AttentionOptions { Softcap = -1 }));
        Named("output", () => Attention.Forward<Half>(q, k, v, q, cu, cu, Heads, KvHeads, HeadDim));
        Named("output", () => Attention.Forward<Half>(q, k, v, k.AsSpan(0, 8 * kvRow), cu, cu, Heads, KvHeads, HeadDim));
        Named("seqLensK", () => Attention.ForwardPaged<Half>(q, keyCache, valueCache, layout, tables, 4, cu, output, cu, Heads));
        Named("blockTables", () => Attention.ForwardPaged<Half>(q, keyCache, valueCache, layout, tables, 5, lengths, output, cu, Heads));
        Named("numHeads", () => Attention.ForwardPaged<Half>(q, keyCache, valueCache, layout, tables, 4, lengths, output, cu, 3));
        Named("keyCache", () => Attention.ForwardPaged<Half>(q, keyCache.AsSpan(1), valueCache, layout, tables, 4, lengths, output, cu, Heads));
        Named("output", () => Attention.ForwardPaged<Half>(q, keyCache, valueCache, layout, tables, 4, lengths, keyCache.AsSpan(0, 8 * qRow), cu, Heads));
    }
}
