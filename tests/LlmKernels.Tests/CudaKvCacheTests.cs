using static LlmKernels.Tests.CudaCompare;

namespace LlmKernels.Tests;

/// <summary>
/// The paged KV cache on a CUDA device: write, gather and copy blocks bit for bit as the CPU API does, and bad slots and block ids
/// (device memory, checked by the kernels) reported at the next synchronisation as ArgumentExceptions naming the C# parameter. The
/// argument checks run now; the rest once the loaded CUDA library has lk_cuda_kv_cache_write, _gather and _copy_blocks (the KV
/// cache branch).
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class CudaKvCacheTests
{
    private static readonly PagedKvCacheLayout Layout = new(NumBlocks: 6, BlockSize: 4, NumKvHeads: 2, HeadDim: 8);

    [CudaKernelFact("lk_cuda_kv_cache_write")]
    public void WriteGatherAndCopyMatchTheCpu()
    {
        Check<float>();
        Check<Half>();
        Check<BFloat16>();

        static void Check<T>() where T : unmanaged
        {
            int cacheElements = (int)Layout.CacheElements, row = (int)Layout.RowElements, tokens = 9, stride = 3 * row;
            var random = new Random(41);
            T[] keyCache = Element.Random<T>(random, cacheElements, -1f, 1f), valueCache = Element.Random<T>(random, cacheElements, -1f, 1f);
            T[] qkv = Element.Random<T>(random, tokens * stride, -3f, 3f);
            long[] slots = [0, 5, -1, 6, 7, 23, 12, -1, 13];
            using DeviceBuffer<T> dk = new(keyCache), dv = new(valueCache), dqkv = new(qkv);
            using DeviceBuffer<long> ds = new(slots);
            using var stream = new CudaStream();

            // Keys and values as slices of a fused qkv buffer.
            KvCache.Write<T>(keyCache, valueCache, Layout, qkv.AsSpan(row), qkv.AsSpan(2 * row), slots, stride, stride);
            KvCache.Write<T>(dk, dv, Layout, dqkv.AsSpan(row), dqkv.AsSpan(2 * row), ds, stride, stride, stream);
            stream.Synchronize();
            Assert.Equal(keyCache, dk.ToArray());
            Assert.Equal(valueCache, dv.ToArray());

            int[] tables = [1, 3, 0, 5, 2, 4, 0, 0], lengths = [7, 9];
            var keyOut = new T[20 * row];
            var valueOut = new T[20 * row];
            using DeviceBuffer<int> dt = new(tables), dl = new(lengths);
            using DeviceBuffer<T> dko = new(keyOut), dvo = new(valueOut);
            KvCache.Gather<T>(keyCache, valueCache, Layout, tables, 4, lengths, keyOut, valueOut);
            KvCache.Gather<T>(dk, dv, Layout, dt, 4, dl, dko, dvo, stream);
            stream.Synchronize();
            Assert.Equal(keyOut, dko.ToArray());
            Assert.Equal(valueOut, dvo.ToArray());

            long[] mapping = [1, 2, 1, 4, 5, 0];
            using DeviceBuffer<long> dm = new(mapping);
            KvCache.CopyBlocks<T>(keyCache, valueCache, Layout, mapping);
            KvCache.CopyBlocks<T>(dk, dv, Layout, dm, stream);
            stream.Synchronize();
            Assert.Equal(keyCache, dk.ToArray());
            Assert.Equal(valueCache, dv.ToArray());
        }
    }

    [CudaKernelFact("lk_cuda_kv_cache_write")]
    public void ASlotOutsideTheCacheIsReportedAtSynchronize()
    {
        int row = (int)Layout.RowElements;
        using DeviceBuffer<float> keyCache = new(Layout.CacheElements), valueCache = new(Layout.CacheElements);
        using DeviceBuffer<float> key = new(3 * row), value = new(3 * row);
        using DeviceBuffer<long> slots = new([2, Layout.SlotCount, 3]);
        using var stream = new CudaStream();
        KvCache.Write<float>(keyCache, valueCache, Layout, key, value, slots, stream: stream);
        var e = Assert.Throws<ArgumentException>(stream.Synchronize);
        Assert.Equal("slotMapping", e.ParamName);
        Assert.Contains($"slot_mapping[1]: slot {Layout.SlotCount} is outside the cache's {Layout.SlotCount} slots", e.Message);
        Assert.Contains("found on the device by lk_cuda_kv_cache_write", e.Message);
        stream.Synchronize(); // reported once

        // The same on the legacy default stream, through each way of asking.
        KvCache.Write<float>(keyCache, valueCache, Layout, key, value, slots);
        Assert.Equal("slotMapping", Assert.Throws<ArgumentException>(CudaStream.Default.Synchronize).ParamName);
        KvCache.Write<float>(keyCache, valueCache, Layout, key, value, slots);
        Assert.Equal("slotMapping", Assert.Throws<ArgumentException>(() => CudaDevice.Synchronize(0)).ParamName);
        KvCache.Write<float>(keyCache, valueCache, Layout, key, value, slots);
        _ = keyCache.ToArray(); // a synchronous copy waits for the kernel on the legacy stream, and reports nothing itself
        Assert.Equal("slotMapping", Assert.Throws<ArgumentException>(CudaDevice.CheckKernelErrors).ParamName);
        CudaDevice.CheckKernelErrors();

        // Two tokens naming one slot.
        using DeviceBuffer<long> twice = new([3, 9, 3]);
        KvCache.Write<float>(keyCache, valueCache, Layout, key, value, twice, stream: stream);
        e = Assert.Throws<ArgumentException>(stream.Synchronize);
        Assert.Equal("slotMapping", e.ParamName);
        Assert.Contains("slot_mapping[", e.Message);
    }

    [CudaKernelFact("lk_cuda_kv_cache_gather")]
    public void ABlockIdOutsideTheCacheIsReportedAtSynchronize()
    {
        int row = (int)Layout.RowElements;
        using DeviceBuffer<float> keyCache = new(Layout.CacheElements), valueCache = new(Layout.CacheElements);
        using DeviceBuffer<float> keyOut = new(16 * row), valueOut = new(16 * row);
        using DeviceBuffer<int> tables = new([0, Layout.NumBlocks]), lengths = new([8]);
        KvCache.Gather<float>(keyCache, valueCache, Layout, tables, 2, lengths, keyOut, valueOut);
        var e = Assert.Throws<ArgumentException>(() => CudaDevice.Synchronize(0));
        Assert.Equal("blockTables", e.ParamName);
        Assert.Contains($"block_tables[0][1]: block {Layout.NumBlocks} is outside [0, num_blocks = {Layout.NumBlocks})", e.Message);

        using DeviceBuffer<long> mapping = new([0, Layout.NumBlocks]);
        KvCache.CopyBlocks<float>(keyCache, valueCache, Layout, mapping);
        e = Assert.Throws<ArgumentException>(CudaStream.Default.Synchronize);
        Assert.Equal("blockMapping", e.ParamName);
    }

    [CudaFact]
    public void BadArgumentsAreNamedAsOnTheCpu()
    {
        int row = (int)Layout.RowElements;
        using DeviceBuffer<Half> keyCache = new(Layout.CacheElements), valueCache = new(Layout.CacheElements), key = new(3 * row), value = new(3 * row);
        using DeviceBuffer<long> slots = new(3), odd = new(3);
        using DeviceBuffer<int> tables = new(4), lengths = new(2);
        Named("layout", () => KvCache.Write<Half>(keyCache, valueCache, Layout with { HeadDim = 0 }, key, value, slots));
        Named("keyCache", () => KvCache.Write<Half>(keyCache.AsSpan(1), valueCache, Layout, key, value, slots));
        Named("valueCache", () => KvCache.Write<Half>(keyCache, valueCache.AsSpan(1), Layout, key, value, slots));
        Named("valueCache", () => KvCache.Write<Half>(keyCache, keyCache, Layout, key, value, slots));
        Named("key", () => KvCache.Write<Half>(keyCache, valueCache, Layout, key.AsSpan(1), value, slots));
        Named("value", () => KvCache.Write<Half>(keyCache, valueCache, Layout, key, value, slots, valueStride: 2 * row));
        Named("keyStride", () => KvCache.Write<Half>(keyCache, valueCache, Layout, key, value, slots, keyStride: row - 1));
        Named("keyCache", () => KvCache.Write<Half>(keyCache, valueCache, Layout, keyCache.AsSpan(0, 3 * row), value, slots));
        Named("blockTables", () => KvCache.Gather<Half>(keyCache, valueCache, Layout, tables, 3, lengths, key, value));
        Named("maxBlocksPerSeq", () => KvCache.Gather<Half>(keyCache, valueCache, Layout, tables, -1, lengths, key, value));
        Named("keyOut", () => KvCache.Gather<Half>(keyCache, valueCache, Layout, tables, 2, lengths, key.AsSpan(1), value.AsSpan(1)));
        Named("valueOut", () => KvCache.Gather<Half>(keyCache, valueCache, Layout, tables, 2, lengths, key, value.AsSpan(1)));
        Named("keyOut", () => KvCache.Gather<Half>(keyCache, valueCache, Layout, tables, 2, lengths, keyCache.AsSpan(0, 3 * row), value));
        Named("blockMapping", () => KvCache.CopyBlocks<Half>(keyCache, valueCache, Layout, odd));
        Named("dataType", () => CudaKernels.KvCacheCopyBlocks(keyCache.DevicePointer, valueCache.DevicePointer, Layout, slots.DevicePointer, 1,
                                                               TensorDataType.Int32));
    }
}
