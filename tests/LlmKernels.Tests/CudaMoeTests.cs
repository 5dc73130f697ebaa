using static LlmKernels.Tests.CudaCompare;

namespace LlmKernels.Tests;

/// <summary>
/// MoE gating, the routing plan, permute and combine on a CUDA device against the CPU API on the same inputs, and bad ids and rows
/// (device memory, checked by the kernels) reported at the next synchronisation. The argument checks run now; the rest once the
/// loaded CUDA library has lk_cuda_moe_gating and lk_cuda_moe_routing / _permute / _combine (the MoE branch).
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class CudaMoeTests
{
    [CudaKernelFact("lk_cuda_moe_gating")]
    public void GatingMatchesTheCpu()
    {
        Check<float>(64, 8, 2, new MoeGatingOptions { Scoring = MoeScoring.TopKSoftmax });                 // Mixtral
        Check<BFloat16>(64, 60, 4, new MoeGatingOptions { Scoring = MoeScoring.SoftmaxTopK, Renormalize = true });
        Check<Half>(64, 256, 8, new MoeGatingOptions                                                          // DeepSeek-V3
        {
            Scoring = MoeScoring.Sigmoid, Renormalize = true, NumGroups = 8, TopKGroups = 4, RoutedScalingFactor = 2.5f,
        }, withBias: true);

        static void Check<T>(int tokens, int experts, int topK, MoeGatingOptions options, bool withBias = false) where T : unmanaged
        {
            var random = new Random(61);
            T[] logits = Element.Random<T>(random, tokens * experts, -4f, 4f);
            float[] bias = withBias ? Element.Random<float>(random, experts, -0.5f, 0.5f) : [];
            var weights = new float[tokens * topK];
            var ids = new int[tokens * topK];
            Moe.Gating<T>(logits, weights, ids, tokens, experts, topK, options, bias);

            using DeviceBuffer<T> dl = new(logits);
            using DeviceBuffer<float> dw = new(weights.Length), db = new(bias);
            using DeviceBuffer<int> di = new(ids.Length);
            Moe.Gating<T>(dl, dw, di, tokens, experts, topK, options, db);
            Assert.Equal(ids, di.ToArray());
            Close<float>(weights, dw.ToArray(), 4, 1e-7, $"Gating<{typeof(T).Name}> {options.Scoring}");
        }
    }

    [CudaKernelFact("lk_cuda_moe_routing")]
    public void RoutingPermuteAndCombineMatchTheCpu()
    {
        Check<float>(blockSize: 0);
        Check<BFloat16>(blockSize: 16);
        Check<Half>(blockSize: 4, expertBegin: 2, expertEnd: 6);

        static void Check<T>(int blockSize, int expertBegin = 0, int expertEnd = 0) where T : unmanaged
        {
            const int tokens = 50, topK = 2, experts = 8, hidden = 96;
            var random = new Random(62);
            int[] ids = new int[tokens * topK];
            for (int t = 0; t < tokens; t++)
            {
                ids[t * topK] = random.Next(experts);
                ids[t * topK + 1] = (ids[t * topK] + 1 + random.Next(experts - 1)) % experts;
            }
            int local = (expertEnd == 0 ? experts : expertEnd) - expertBegin;
            int capacity = Moe.RoutingCapacity(tokens, topK, local, blockSize);
            int[] counts = new int[local], offsets = new int[local + 1], sorted = new int[capacity], slotRows = new int[tokens * topK];
            int[] blockExperts = new int[blockSize > 1 ? capacity / blockSize : 0];
            Array.Fill(sorted, -1);
            Moe.Routing(ids, tokens, topK, experts, counts, offsets, sorted, slotRows, blockExperts, blockSize, expertBegin, expertEnd);

            using DeviceBuffer<int> di = new(ids), dc = new(local), doff = new(local + 1), ds = new(capacity), dr = new(slotRows.Length);
            using DeviceBuffer<int> dbe = new(blockExperts.Length);
            ds.Memset(0xff); // -1: rows past the plan are padding, so permute can take the whole capacity
            Moe.Routing(di, tokens, topK, experts, dc, doff, ds, dr, dbe, blockSize, expertBegin, expertEnd);
            Assert.Equal(counts, dc.ToArray());
            Assert.Equal(offsets, doff.ToArray());
            Assert.Equal(sorted, ds.ToArray());
            Assert.Equal(slotRows, dr.ToArray());
            int rows = offsets[local];
            if (blockSize > 1)
                Assert.Equal(blockExperts[..(rows / blockSize)], dbe.AsSpan(0, rows / blockSize).ToArray());

            T[] hiddenStates = Element.Random<T>(random, tokens * hidden, -2f, 2f);
            var permuted = new T[capacity * hidden];
            Moe.Permute<T>(hiddenStates, permuted, sorted, tokens, topK, hidden);
            using DeviceBuffer<T> dh = new(hiddenStates), dp = new(permuted.Length);
            Moe.Permute<T>(dh, dp, ds, tokens, topK, hidden);
            Assert.Equal(permuted, dp.ToArray());

            float[] weights = Element.Random<float>(random, tokens * topK, 0f, 1f);
            var combined = new T[tokens * hidden];
            Moe.Combine<T>(permuted, weights, slotRows, combined, tokens, topK, hidden);
            using DeviceBuffer<float> dw = new(weights);
            using DeviceBuffer<T> dout = new(combined.Length);
            Moe.Combine<T>(dp, dw, dr, dout, tokens, topK, hidden);
            Close<T>(combined, dout.ToArray(), 1, 0, $"Combine<{typeof(T).Name}>");
        }
    }

    [CudaKernelFact("lk_cuda_moe_routing")]
    public void BadIdsAndRowsAreReportedAtSynchronize()
    {
        using var stream = new CudaStream();
        using DeviceBuffer<int> ids = new([0, 1, 9, 2]), counts = new(4), offsets = new(5), sorted = new(4);
        Moe.Routing(ids, 2, 2, 4, counts, offsets, sorted, stream: stream);
        var e = Assert.Throws<ArgumentException>(stream.Synchronize);
        Assert.Equal("expertIds", e.ParamName);
        Assert.Contains("expert_ids[2]: 9 is outside [0, num_experts = 4)", e.Message);

        using DeviceBuffer<float> input = new(new float[2 * 8]), output = new(3 * 8), weights = new(new float[4]);
        using DeviceBuffer<int> badSlots = new([0, -1, 4]), badRows = new([0, 1, 2, 3]);
        Moe.Permute<float>(input, output, badSlots, 2, 2, 8, stream: stream);
        Assert.Equal("sortedSlots", Assert.Throws<ArgumentException>(stream.Synchronize).ParamName);
        Moe.Combine<float>(output, weights, badRows, input, 2, 2, 8, stream: stream);
        Assert.Equal("slotRows", Assert.Throws<ArgumentException>(stream.Synchronize).ParamName);
    }

    [CudaFact]
    public void BadArgumentsAreNamedAsOnTheCpu()
    {
        using DeviceBuffer<float> logits = new(16 * 8), weights = new(32), input = new(16 * 8), output = new(40 * 8), w = new(32);
        using DeviceBuffer<int> ids = new(32), counts = new(8), offsets = new(9), sorted = new(32), rows = new(32);
        using DeviceBuffer<float> bias = new(7);
        Named("numTokens", () => Moe.Gating<float>(logits, weights, ids, -1, 8, 2));
        Named("topK", () => Moe.Gating<float>(logits, weights, ids, 16, 8, 9));
        Named("logits", () => Moe.Gating<float>(logits, weights, ids, 17, 8, 1));
        Named("weights", () => Moe.Gating<float>(logits, weights.AsSpan(1), ids, 16, 8, 2));
        Named("expertIds", () => Moe.Gating<float>(logits, weights, ids.AsSpan(1), 16, 8, 2));
        Named("correctionBias", () => Moe.Gating<float>(logits, weights, ids, 16, 8, 2, correctionBias: bias));
        Named("options", () => Moe.Gating<float>(logits, weights, ids, 16, 8, 2, new MoeGatingOptions { NumGroups = 3, TopKGroups = 1 }));
        Named("logitsStride", () => Moe.Gating<float>(logits, weights, ids, 16, 8, 2, logitsStride: 4));
        Named("weights", () => Moe.Gating<float>(logits, logits.AsSpan(0, 32), ids, 16, 8, 2));
        Named("expertEnd", () => Moe.Routing(ids, 16, 2, 8, counts, offsets, sorted, expertBegin: 2, expertEnd: 2));
        Named("sortedSlots", () => Moe.Routing(ids, 16, 2, 8, counts, offsets, sorted.AsSpan(1)));
        Named("sortedSlots", () => Moe.Routing(ids, 16, 2, 8, counts, offsets, sorted, blockSize: 4));
        Named("expertOffsets", () => Moe.Routing(ids, 16, 2, 8, counts, offsets.AsSpan(1), sorted));
        Named("slotRows", () => Moe.Routing(ids, 16, 2, 8, counts, offsets, sorted, rows.AsSpan(2)));
        Named("expertCounts", () => Moe.Routing(ids, 16, 2, 8, ids.AsSpan(0, 8), offsets, sorted));
        Named("hidden", () => Moe.Permute<float>(input, output, sorted, 16, 2, 0));
        Named("output", () => Moe.Permute<float>(input, output.AsSpan(9), sorted, 16, 2, 8, outputStride: 10));
        Named("input", () => Moe.Permute<float>(input.AsSpan(1), output, sorted, 16, 2, 8));
        Named("output", () => Moe.Permute<float>(input, input, sorted.AsSpan(0, 2), 16, 2, 8));
        Named("topK", () => Moe.Combine<float>(output, w, rows, input, 16, 33, 8));
        Named("weights", () => Moe.Combine<float>(output, w.AsSpan(1), rows, input, 16, 2, 8));
        Named("output", () => Moe.Combine<float>(output, w, rows, output.AsSpan(0, 128), 16, 2, 8));
    }
}
