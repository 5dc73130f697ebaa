namespace LlmKernels;

// The paged KV cache on a CUDA device: the span overloads' parameters, defaults and checks over device views. The indices (slots,
// block ids, sequence lengths) are device memory, so the kernels check them as they read them (docs/cuda/managed.md).
public static partial class KvCache
{
    /// <summary>
    /// Writes new tokens' keys and values into the cache on a CUDA device (<c>lk_cuda_kv_cache_write</c>): what
    /// <see cref="Write{T}(Span{T}, Span{T}, PagedKvCacheLayout, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{long}, int, int, CpuContext?)"/>
    /// does. A slot outside the cache, or named by two tokens, is found by the kernel: that token is not written (others are), and the
    /// next <see cref="CudaStream.Synchronize"/> reports it as an <see cref="ArgumentException"/> naming <c>slotMapping</c>.
    /// </summary>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements; not overlapping <paramref name="keyCache"/>.</param>
    /// <param name="layout">The shape of both caches; every dimension positive.</param>
    /// <param name="key">Keys, <c>[tokens, keyStride]</c>; must not overlap either cache.</param>
    /// <param name="value">Values, <c>[tokens, valueStride]</c>; must not overlap either cache.</param>
    /// <param name="slotMapping">The slot of each token, <c>[tokens]</c>: in <c>[0, SlotCount)</c>, no slot twice; negative is padding.</param>
    /// <param name="keyStride">Elements between tokens of <paramref name="key"/>; 0 means <see cref="PagedKvCacheLayout.RowElements"/>.</param>
    /// <param name="valueStride">Elements between tokens of <paramref name="value"/>; 0 means <see cref="PagedKvCacheLayout.RowElements"/>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A shape, stride or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Write<T>(DeviceSpan<T> keyCache, DeviceSpan<T> valueCache, PagedKvCacheLayout layout, DeviceSpan<T> key,
                                DeviceSpan<T> value, DeviceSpan<long> slotMapping, int keyStride = 0, int valueStride = 0,
                                CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        layout.CheckDeviceCaches(keyCache.Length, valueCache.Length);
        long row = layout.RowElements;
        long keyStep = SpanChecks.TokenStride(keyStride, row, nameof(keyStride), "layout.RowElements");
        long valueStep = SpanChecks.TokenStride(valueStride, row, nameof(valueStride), "layout.RowElements");
        long tokens = slotMapping.Length;
        SpanChecks.TokenRows(key.Length, tokens, keyStep, row, nameof(key), nameof(keyStride));
        SpanChecks.TokenRows(value.Length, tokens, valueStep, row, nameof(value), nameof(valueStride));

        using var call = new DeviceCall(stream);
        DeviceRange kc = call.Range(keyCache, nameof(keyCache)), vc = call.Range(valueCache, nameof(valueCache));
        DeviceRange kr = call.Range(key, nameof(key)), vr = call.Range(value, nameof(value));
        nint slots = call.Address(slotMapping, nameof(slotMapping));
        DeviceChecks.NoOverlap(vc, kc, nameof(valueCache), nameof(keyCache));
        if (tokens == 0)
            return;
        DeviceChecks.NoOverlap(kc, kr, nameof(keyCache), nameof(key));
        DeviceChecks.NoOverlap(kc, vr, nameof(keyCache), nameof(value));
        DeviceChecks.NoOverlap(vc, kr, nameof(valueCache), nameof(key));
        DeviceChecks.NoOverlap(vc, vr, nameof(valueCache), nameof(value));
        CudaKernels.KvCacheWrite(kc.Address, vc.Address, layout, kr.Address, vr.Address, slots, tokens, dataType, keyStep, valueStep,
                                 call.Stream);
    }

    /// <summary>
    /// Gathers sequences' pages into contiguous rows on a CUDA device (<c>lk_cuda_kv_cache_gather</c>): what
    /// <see cref="Gather{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, PagedKvCacheLayout, ReadOnlySpan{int}, int, ReadOnlySpan{int}, Span{T}, Span{T}, CpuContext?)"/>
    /// does, except that it returns nothing: the total of the lengths is on the device. A block id outside the cache, a length
    /// beyond the block table, or a total beyond <paramref name="keyOut"/>'s rows is found by the kernel and reported by the next
    /// <see cref="CudaStream.Synchronize"/> (naming <c>blockTables</c> or <c>seqLens</c>).
    /// </summary>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="layout">The shape of both caches; every dimension positive.</param>
    /// <param name="blockTables">Each sequence's block ids, <c>[sequences, maxBlocksPerSeq]</c>: at least <c>seqLens.Length * maxBlocksPerSeq</c> elements.</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>; non-negative.</param>
    /// <param name="seqLens">Tokens in each sequence, <c>[sequences]</c>.</param>
    /// <param name="keyOut">The gathered keys, a whole number of rows of <see cref="PagedKvCacheLayout.RowElements"/>. Must not overlap the caches or <paramref name="valueOut"/>.</param>
    /// <param name="valueOut">The gathered values, as long as <paramref name="keyOut"/>. Must not overlap the caches.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A shape or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Gather<T>(DeviceSpan<T> keyCache, DeviceSpan<T> valueCache, PagedKvCacheLayout layout, DeviceSpan<int> blockTables,
                                 int maxBlocksPerSeq, DeviceSpan<int> seqLens, DeviceSpan<T> keyOut, DeviceSpan<T> valueOut,
                                 CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        layout.CheckDeviceCaches(keyCache.Length, valueCache.Length);
        CheckDeviceBlockTables(blockTables.Length, maxBlocksPerSeq, seqLens.Length);
        long row = layout.RowElements;
        DeviceChecks.SameLength(keyOut.Length, valueOut.Length, nameof(keyOut), nameof(valueOut));
        long capacity = keyOut.Length / row;
        if (capacity * row != keyOut.Length)
            throw new ArgumentException($"Length {keyOut.Length} is not a whole number of rows of layout.RowElements ({row}).", nameof(keyOut));

        using var call = new DeviceCall(stream);
        DeviceRange kc = call.Range(keyCache, nameof(keyCache)), vc = call.Range(valueCache, nameof(valueCache));
        DeviceRange ko = call.Range(keyOut, nameof(keyOut)), vo = call.Range(valueOut, nameof(valueOut));
        nint tables = call.Address(blockTables, nameof(blockTables)), lengths = call.Address(seqLens, nameof(seqLens));
        DeviceChecks.NoOverlap(vc, kc, nameof(valueCache), nameof(keyCache));
        DeviceChecks.NoOverlap(ko, vo, nameof(keyOut), nameof(valueOut));
        DeviceChecks.NoOverlap(ko, kc, nameof(keyOut), nameof(keyCache));
        DeviceChecks.NoOverlap(ko, vc, nameof(keyOut), nameof(valueCache));
        DeviceChecks.NoOverlap(vo, kc, nameof(valueOut), nameof(keyCache));
        DeviceChecks.NoOverlap(vo, vc, nameof(valueOut), nameof(valueCache));
        if (seqLens.IsEmpty)
            return;
        CudaKernels.KvCacheGather(kc.Address, vc.Address, layout, tables, maxBlocksPerSeq, lengths, seqLens.Length, ko.Address, vo.Address,
                                  capacity, dataType, call.Stream);
    }

    /// <summary>
    /// Copies whole blocks of both caches on a CUDA device (<c>lk_cuda_kv_cache_copy_blocks</c>): what
    /// <see cref="CopyBlocks{T}(Span{T}, Span{T}, PagedKvCacheLayout, ReadOnlySpan{long}, CpuContext?)"/> does. A block id outside the
    /// cache, or pairs whose order would matter, are found by the kernel and reported by the next <see cref="CudaStream.Synchronize"/>
    /// (naming <c>blockMapping</c>).
    /// </summary>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements; not overlapping <paramref name="keyCache"/>.</param>
    /// <param name="layout">The shape of both caches; every dimension positive.</param>
    /// <param name="blockMapping">(source, destination) pairs, <c>[pairs, 2]</c>: an even length.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A shape or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void CopyBlocks<T>(DeviceSpan<T> keyCache, DeviceSpan<T> valueCache, PagedKvCacheLayout layout, DeviceSpan<long> blockMapping,
                                     CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        layout.CheckDeviceCaches(keyCache.Length, valueCache.Length);
        if (blockMapping.Length % 2 != 0)
            throw new ArgumentException($"Length {blockMapping.Length} is odd: the mapping is (source, destination) pairs.", nameof(blockMapping));

        using var call = new DeviceCall(stream);
        DeviceRange kc = call.Range(keyCache, nameof(keyCache)), vc = call.Range(valueCache, nameof(valueCache));
        nint mapping = call.Address(blockMapping, nameof(blockMapping));
        DeviceChecks.NoOverlap(vc, kc, nameof(valueCache), nameof(keyCache));
        if (blockMapping.IsEmpty)
            return;
        CudaKernels.KvCacheCopyBlocks(kc.Address, vc.Address, layout, mapping, blockMapping.Length / 2, dataType, call.Stream);
    }

    /// <summary><see cref="CheckBlockTables"/> over a device table's length.</summary>
    internal static void CheckDeviceBlockTables(long blockTablesLength, int maxBlocksPerSeq, long numSeqs)
    {
        if (maxBlocksPerSeq < 0)
            throw new ArgumentOutOfRangeException(nameof(maxBlocksPerSeq), maxBlocksPerSeq, "Must be non-negative.");
        long tableEntries = numSeqs * maxBlocksPerSeq;
        if (blockTablesLength < tableEntries)
            throw new ArgumentException($"Length {blockTablesLength} is less than {numSeqs} sequences x maxBlocksPerSeq ({tableEntries}).",
                                        "blockTables");
    }
}
