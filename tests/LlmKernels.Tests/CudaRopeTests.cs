using static LlmKernels.Tests.CudaCompare;

namespace LlmKernels.Tests;

/// <summary>
/// RoPE on a CUDA device against the CPU API on the same inputs (the cache uploaded once), and a position outside the cache
/// reported at the next synchronisation. The argument checks run now; the rest once the loaded CUDA library has lk_cuda_rope
/// (the RoPE branch).
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class CudaRopeTests
{
    [CudaKernelFact("lk_cuda_rope")]
    public void RopeMatchesTheCpu()
    {
        foreach (RopeStyle style in new[] { RopeStyle.NeoX, RopeStyle.GptJ })
        {
            Check<float>(style, longPositions: false);
            Check<Half>(style, longPositions: true);
            Check<BFloat16>(style, longPositions: false);
        }

        static void Check<T>(RopeStyle style, bool longPositions) where T : unmanaged
        {
            // Llama-style GQA, partial rotary, q and k slices of one fused qkv buffer with padding.
            const int tokens = 37, heads = 8, kvHeads = 2, headDim = 128, rotaryDim = 64, pad = 4;
            const int stride = (heads + 2 * kvHeads) * headDim + pad;
            RopeCache cache = RopeCache.Build(2048, rotaryDim, 500000.0, RopeScaling.Llama3());
            var random = new Random(31);
            T[] qkv = Element.Random<T>(random, tokens * stride, -2f, 2f);
            int[] positions = Enumerable.Range(0, tokens).Select(t => t == 0 ? 2047 : random.Next(2048)).ToArray();
            long[] longs = Array.ConvertAll(positions, p => (long)p);
            using DeviceBuffer<T> d = new(qkv);
            using DeviceBuffer<float> dc = new(cache.CosSin);
            using DeviceBuffer<int> dp = new(positions);
            using DeviceBuffer<long> dl = new(longs);
            int kAt = heads * headDim;

            T[] want = (T[])qkv.Clone();
            Kernels.Rope<T>(want, want.AsSpan(kAt), positions, cache, heads, kvHeads, headDim, style, stride, stride);
            if (longPositions)
                Kernels.Rope<T>(d, d.AsSpan(kAt), dl, dc, rotaryDim, heads, kvHeads, headDim, style, stride, stride);
            else
                Kernels.Rope<T>(d, d.AsSpan(kAt), dp, dc, rotaryDim, heads, kvHeads, headDim, style, stride, stride);
            Close<T>(want, d.ToArray(), 1, 1e-6, $"Rope<{typeof(T).Name}> {style}");

            // q only, through the raw form.
            d.CopyFrom(qkv);
            want = (T[])qkv.Clone();
            Kernels.Rope<T>(want, Span<T>.Empty, positions, cache, heads, 0, headDim, style, stride);
            CudaKernels.Rope(d.DevicePointer, 0, dp.DevicePointer, TensorDataType.Int32, dc.DevicePointer, rotaryDim, cache.MaxPosition,
                             tokens, heads, 0, headDim, TensorDataTypes.Of<T>(), style, stride);
            Close<T>(want, d.ToArray(), 1, 1e-6, $"raw Rope<{typeof(T).Name}> {style}");
        }
    }

    [CudaKernelFact("lk_cuda_rope")]
    public void APositionOutsideTheCacheIsReportedAtSynchronize()
    {
        const int heads = 2, headDim = 16;
        RopeCache cache = RopeCache.Build(64, headDim);
        float[] q = Element.Random<float>(new Random(32), 3 * heads * headDim, -1f, 1f);
        using DeviceBuffer<float> dq = new(q), dc = new(cache.CosSin);
        using DeviceBuffer<int> positions = new([5, 64, 7]);
        using var stream = new CudaStream();
        Kernels.Rope<float>(dq, default, positions, dc, headDim, heads, 0, headDim, stream: stream);
        var e = Assert.Throws<ArgumentException>(stream.Synchronize);
        Assert.Equal("positions", e.ParamName);
        Assert.Contains("positions[1]: 64 is outside [0, max_position = 64)", e.Message);
        Assert.Contains("lk_cuda_rope", e.Message);
        // Reported once; the token it directed is left as it was.
        stream.Synchronize();
        Assert.Equal(q.AsSpan(heads * headDim, heads * headDim).ToArray(), dq.AsSpan(heads * headDim, heads * headDim).ToArray());
    }

    [CudaFact]
    public void BadArgumentsAreNamedAsOnTheCpu()
    {
        using DeviceBuffer<float> q = new(3 * 4 * 16), k = new(3 * 2 * 16), cache = new(64 * 16);
        using DeviceBuffer<int> positions = new(3);
        Named("rotaryDim", () => Kernels.Rope<float>(q, k, positions, cache, 15, 4, 2, 16));
        Named("cosSinCache", () => Kernels.Rope<float>(q, k, positions, cache.AsSpan(0, 100), 16, 4, 2, 16));
        Named("cosSinCache", () => Kernels.Rope<float>(q, k, positions, cache, 32, 4, 2, 16));
        Named("numHeads", () => Kernels.Rope<float>(q, k, positions, cache, 16, 0, 2, 16));
        Named("numKvHeads", () => Kernels.Rope<float>(q, k, positions, cache, 16, 4, 3, 16));
        Named("numKvHeads", () => Kernels.Rope<float>(q, k, positions, cache, 16, 4, 0, 16));
        Named("qStride", () => Kernels.Rope<float>(q, k, positions, cache, 16, 4, 2, 16, qStride: 10));
        Named("q", () => Kernels.Rope<float>(q.AsSpan(1), k, positions, cache, 16, 4, 2, 16));
        Named("k", () => Kernels.Rope<float>(q, k.AsSpan(1), positions, cache, 16, 4, 2, 16));
        Named("style", () => Kernels.Rope<float>(q, k, positions, cache, 16, 4, 2, 16, (RopeStyle)3));
        Named("q", () => Kernels.Rope<float>(cache.AsSpan(0, 192), default, positions, cache, 16, 4, 0, 16));
        Named("positionType", () => CudaKernels.Rope(q.DevicePointer, 0, positions.DevicePointer, TensorDataType.Float32, cache.DevicePointer,
                                                     16, 64, 3, 4, 0, 16, TensorDataType.Float32));
    }
}
