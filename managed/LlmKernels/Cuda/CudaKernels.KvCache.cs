using LlmKernels.Interop;

namespace LlmKernels;

public static unsafe partial class CudaKernels
{
    /// <summary>
    /// Writes new tokens' keys and values to their slots on the device (<c>lk_cuda_kv_cache_write</c>, vLLM's
    /// <c>reshape_and_cache_flash</c>), as <see cref="KvCache.Write{T}(DeviceSpan{T}, DeviceSpan{T}, PagedKvCacheLayout, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{long}, int, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="keyCache">Device pointer: the key cache, <c>layout.CacheElements</c> of <paramref name="dataType"/>.</param>
    /// <param name="valueCache">Device pointer: the value cache, as large.</param>
    /// <param name="layout">The caches' shape.</param>
    /// <param name="key">Device pointer: <c>[numTokens, keyStride]</c>.</param>
    /// <param name="value">Device pointer: <c>[numTokens, valueStride]</c>.</param>
    /// <param name="slotMapping">Device pointer: <c>[numTokens]</c> int64 slots; negative is padding.</param>
    /// <param name="numTokens">Tokens; non-negative.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="keyStride">Elements between tokens of <paramref name="key"/>; 0 means <c>layout.RowElements</c>.</param>
    /// <param name="valueStride">Elements between tokens of <paramref name="value"/>; 0 means <c>layout.RowElements</c>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void KvCacheWrite(nint keyCache, nint valueCache, PagedKvCacheLayout layout, nint key, nint value, nint slotMapping,
                                    long numTokens, TensorDataType dataType, long keyStride = 0, long valueStride = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new KvCacheWriteParams
        {
            Cache = Cache(keyCache, valueCache, layout, dataType),
            Key = (void*)key,
            Value = (void*)value,
            NumTokens = numTokens,
            KeyStride = keyStride,
            ValueStride = valueStride,
            SlotMapping = (long*)slotMapping,
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaKvCacheWrite(stream, &p), "lk_cuda_kv_cache_write");
    }

    /// <summary>
    /// Gathers sequences' pages into contiguous rows on the device (<c>lk_cuda_kv_cache_gather</c>), as
    /// <see cref="KvCache.Gather{T}(DeviceSpan{T}, DeviceSpan{T}, PagedKvCacheLayout, DeviceSpan{int}, int, DeviceSpan{int}, DeviceSpan{T}, DeviceSpan{T}, CudaStream?)"/>.
    /// </summary>
    /// <param name="keyCache">Device pointer: the key cache.</param>
    /// <param name="valueCache">Device pointer: the value cache.</param>
    /// <param name="layout">The caches' shape.</param>
    /// <param name="blockTables">Device pointer: int32 <c>[numSeqs, maxBlocksPerSeq]</c>.</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>.</param>
    /// <param name="seqLens">Device pointer: int32 <c>[numSeqs]</c>.</param>
    /// <param name="numSeqs">Sequences; non-negative.</param>
    /// <param name="keyOut">Device pointer: <c>[outTokens, layout.RowElements]</c>.</param>
    /// <param name="valueOut">Device pointer: as large.</param>
    /// <param name="outTokens">Rows <paramref name="keyOut"/> and <paramref name="valueOut"/> hold: at least the total of the lengths.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void KvCacheGather(nint keyCache, nint valueCache, PagedKvCacheLayout layout, nint blockTables, long maxBlocksPerSeq,
                                     nint seqLens, long numSeqs, nint keyOut, nint valueOut, long outTokens, TensorDataType dataType,
                                     nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new KvCacheGatherParams
        {
            Cache = Cache(keyCache, valueCache, layout, dataType),
            BlockTables = (int*)blockTables,
            MaxBlocksPerSeq = maxBlocksPerSeq,
            SeqLens = (int*)seqLens,
            NumSeqs = numSeqs,
            KeyOut = (void*)keyOut,
            ValueOut = (void*)valueOut,
            OutTokens = outTokens,
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaKvCacheGather(stream, &p), "lk_cuda_kv_cache_gather");
    }

    /// <summary>
    /// Copies whole blocks of both caches on the device (<c>lk_cuda_kv_cache_copy_blocks</c>, vLLM's <c>copy_blocks</c>), as
    /// <see cref="KvCache.CopyBlocks{T}(DeviceSpan{T}, DeviceSpan{T}, PagedKvCacheLayout, DeviceSpan{long}, CudaStream?)"/>.
    /// </summary>
    /// <param name="keyCache">Device pointer: the key cache.</param>
    /// <param name="valueCache">Device pointer: the value cache.</param>
    /// <param name="layout">The caches' shape.</param>
    /// <param name="blockMapping">Device pointer: int64 <c>[numPairs, 2]</c> (source, destination) pairs.</param>
    /// <param name="numPairs">Pairs; non-negative.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void KvCacheCopyBlocks(nint keyCache, nint valueCache, PagedKvCacheLayout layout, nint blockMapping, long numPairs,
                                         TensorDataType dataType, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new KvCacheCopyBlocksParams
        {
            Cache = Cache(keyCache, valueCache, layout, dataType),
            BlockMapping = (long*)blockMapping,
            NumPairs = numPairs,
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaKvCacheCopyBlocks(stream, &p), "lk_cuda_kv_cache_copy_blocks");
    }

    private static PagedKvCache Cache(nint keyCache, nint valueCache, PagedKvCacheLayout layout, TensorDataType dataType) =>
        new()
        {
            KeyCache = (void*)keyCache,
            ValueCache = (void*)valueCache,
            NumBlocks = layout.NumBlocks,
            BlockSize = layout.BlockSize,
            NumKvHeads = layout.NumKvHeads,
            HeadDim = layout.HeadDim,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
}
