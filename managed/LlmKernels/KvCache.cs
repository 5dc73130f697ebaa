using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// The paged KV cache of vLLM (PagedAttention), one layer at a time, in the flash layout
/// <see cref="PagedKvCacheLayout"/> describes: write new tokens' keys and values to their slots,
/// gather sequences' pages into contiguous rows, copy whole blocks (copy-on-write prefix sharing).
/// Every call is a bitwise copy of rows, whatever the element type.
/// </summary>
/// <remarks>
/// The shapes are checked here, each throw naming its C# parameter. The indices (slots, block ids,
/// sequence lengths) are checked by the native library, which reads them anyway: a bad one throws
/// <see cref="ArgumentException"/> whose <see cref="ArgumentException.ParamName"/> is the C# parameter
/// (<c>slotMapping</c>, <c>blockTables</c>, <c>seqLens</c>, <c>blockMapping</c>; <c>keyOut</c> for a
/// gather too large for it) and whose message names the element, for example <c>slot_mapping[3]</c>. Either way the check comes before anything is written: a call that throws
/// leaves the caches and outputs as they were.
/// </remarks>
public static partial class KvCache
{
    /// <summary>
    /// Writes the keys and values of new tokens into the cache (vLLM's <c>reshape_and_cache_flash</c>):
    /// row <c>t</c> of <paramref name="key"/> and <paramref name="value"/> goes to slot
    /// <c>slotMapping[t]</c> of <paramref name="keyCache"/> and <paramref name="valueCache"/>.
    /// </summary>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements; not overlapping <paramref name="keyCache"/>.</param>
    /// <param name="layout">The shape of both caches; every dimension positive.</param>
    /// <param name="key">Keys, <c>[tokens, keyStride]</c>, a token's <c>NumKvHeads * HeadDim</c> elements first; may be a slice of a fused
    /// qkv buffer. Must not overlap either cache.</param>
    /// <param name="value">Values, <c>[tokens, valueStride]</c>, laid out like <paramref name="key"/>. Must not overlap either cache.</param>
    /// <param name="slotMapping">The slot of each token, <c>[tokens]</c>: in <c>[0, SlotCount)</c>, no slot twice; a negative slot is
    /// padding and that token is skipped.</param>
    /// <param name="keyStride">Elements between tokens of <paramref name="key"/>; 0 means <see cref="PagedKvCacheLayout.RowElements"/>.</param>
    /// <param name="valueStride">Elements between tokens of <paramref name="value"/>; 0 means <see cref="PagedKvCacheLayout.RowElements"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A shape, stride, overlap or slot is wrong; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void Write<T>(Span<T> keyCache, Span<T> valueCache, PagedKvCacheLayout layout, ReadOnlySpan<T> key,
                                       ReadOnlySpan<T> value, ReadOnlySpan<long> slotMapping, int keyStride = 0, int valueStride = 0,
                                       CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        layout.CheckCaches<T>(keyCache, valueCache);
        long row = layout.RowElements;
        long keyStep = SpanChecks.TokenStride(keyStride, row, nameof(keyStride), "layout.RowElements");
        long valueStep = SpanChecks.TokenStride(valueStride, row, nameof(valueStride), "layout.RowElements");
        int tokens = slotMapping.Length;
        if (tokens == 0)
            return;
        SpanChecks.TokenRows(key.Length, tokens, keyStep, row, nameof(key), nameof(keyStride));
        SpanChecks.TokenRows(value.Length, tokens, valueStep, row, nameof(value), nameof(valueStride));
        SpanChecks.NoOverlap<T, T>(keyCache, key, nameof(keyCache), nameof(key));
        SpanChecks.NoOverlap<T, T>(keyCache, value, nameof(keyCache), nameof(value));
        SpanChecks.NoOverlap<T, T>(valueCache, key, nameof(valueCache), nameof(key));
        SpanChecks.NoOverlap<T, T>(valueCache, value, nameof(valueCache), nameof(value));

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* keyCachePtr = keyCache)
        fixed (T* valueCachePtr = valueCache)
        fixed (T* keyPtr = key)
        fixed (T* valuePtr = value)
        fixed (long* slotsPtr = slotMapping)
        {
            var p = new KvCacheWriteParams
            {
                Cache = Native(keyCachePtr, valueCachePtr, layout, dtype),
                Key = keyPtr,
                Value = valuePtr,
                NumTokens = tokens,
                KeyStride = keyStep,
                ValueStride = valueStep,
                SlotMapping = slotsPtr,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.KvCacheWrite(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_kv_cache_write");
        }
    }

    /// <summary>
    /// Gathers the pages of a batch of sequences into contiguous rows, sequence after sequence (the
    /// input of a prefill attention over cached context): token <c>i</c> of sequence <c>s</c> is read from
    /// block <c>blockTables[s * maxBlocksPerSeq + i / BlockSize]</c>, offset <c>i % BlockSize</c>, and
    /// written to row <c>seqLens[0] + ... + seqLens[s - 1] + i</c> of <paramref name="keyOut"/> and <paramref name="valueOut"/>.
    /// Rows past the total are left as they are.
    /// </summary>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="layout">The shape of both caches; every dimension positive.</param>
    /// <param name="blockTables">Each sequence's block ids, <c>[sequences, maxBlocksPerSeq]</c>: at least <c>seqLens.Length * maxBlocksPerSeq</c>
    /// elements. Only the <c>ceil(seqLens[s] / BlockSize)</c> entries a sequence uses are read, and each must be in <c>[0, NumBlocks)</c>;
    /// the rest may hold anything (vLLM pads with -1 or 0).</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>; non-negative.</param>
    /// <param name="seqLens">Tokens in each sequence, <c>[sequences]</c>: non-negative, at most <c>maxBlocksPerSeq * BlockSize</c>.</param>
    /// <param name="keyOut">The gathered keys, <c>[capacity, NumKvHeads, HeadDim]</c>: a whole number of rows, at least the total of
    /// <paramref name="seqLens"/>. Must not overlap the caches or <paramref name="valueOut"/>.</param>
    /// <param name="valueOut">The gathered values, as long as <paramref name="keyOut"/>. Must not overlap the caches.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <returns>The rows written: the total of <paramref name="seqLens"/>.</returns>
    /// <exception cref="ArgumentException">A shape, overlap, sequence length or block id is wrong, or the output is too small; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe int Gather<T>(ReadOnlySpan<T> keyCache, ReadOnlySpan<T> valueCache, PagedKvCacheLayout layout,
                                       ReadOnlySpan<int> blockTables, int maxBlocksPerSeq, ReadOnlySpan<int> seqLens, Span<T> keyOut,
                                       Span<T> valueOut, CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        layout.CheckCaches(keyCache, valueCache);
        CheckBlockTables(blockTables, maxBlocksPerSeq, seqLens.Length);
        int row = (int)layout.RowElements;
        SpanChecks.SameLength<T, T>(keyOut, valueOut, nameof(keyOut), nameof(valueOut));
        int capacity = keyOut.Length / row;
        if (capacity * row != keyOut.Length)
            throw new ArgumentException($"Length {keyOut.Length} is not a whole number of rows of layout.RowElements ({row}).", nameof(keyOut));
        SpanChecks.NoOverlap<T, T>(keyOut, valueOut, nameof(keyOut), nameof(valueOut));
        SpanChecks.NoOverlap<T, T>(keyOut, keyCache, nameof(keyOut), nameof(keyCache));
        SpanChecks.NoOverlap<T, T>(keyOut, valueCache, nameof(keyOut), nameof(valueCache));
        SpanChecks.NoOverlap<T, T>(valueOut, keyCache, nameof(valueOut), nameof(keyCache));
        SpanChecks.NoOverlap<T, T>(valueOut, valueCache, nameof(valueOut), nameof(valueCache));
        if (seqLens.IsEmpty)
            return 0;

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* keyCachePtr = keyCache)
        fixed (T* valueCachePtr = valueCache)
        fixed (int* tablesPtr = blockTables)
        fixed (int* seqLensPtr = seqLens)
        fixed (T* keyOutPtr = keyOut)
        fixed (T* valueOutPtr = valueOut)
        {
            var p = new KvCacheGatherParams
            {
                Cache = Native(keyCachePtr, valueCachePtr, layout, dtype),
                BlockTables = tablesPtr,
                MaxBlocksPerSeq = maxBlocksPerSeq,
                SeqLens = seqLensPtr,
                NumSeqs = seqLens.Length,
                KeyOut = keyOutPtr,
                ValueOut = valueOutPtr,
                OutTokens = capacity,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.KvCacheGather(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_kv_cache_gather");
        }
        // The native call has checked every length is in [0, capacity] and their total fits.
        int total = 0;
        foreach (int length in seqLens)
            total += length;
        return total;
    }

    /// <summary>
    /// Copies whole blocks of both caches (vLLM's <c>copy_blocks</c>, for copy-on-write when sequences that share a
    /// prefix diverge): for each pair <c>p</c>, block <c>blockMapping[2p]</c> to block <c>blockMapping[2p + 1]</c>.
    /// </summary>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements; not overlapping <paramref name="keyCache"/>.</param>
    /// <param name="layout">The shape of both caches; every dimension positive.</param>
    /// <param name="blockMapping">(source, destination) pairs, <c>[pairs, 2]</c>: an even length, ids in <c>[0, NumBlocks)</c>. A source may
    /// feed several destinations, but no block may be the destination of two pairs, nor the destination of one and the source of another
    /// (the result would depend on the order). A pair whose source is its destination does nothing.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A shape or block id is wrong, or two pairs conflict; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void CopyBlocks<T>(Span<T> keyCache, Span<T> valueCache, PagedKvCacheLayout layout, ReadOnlySpan<long> blockMapping,
                                            CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        layout.CheckCaches<T>(keyCache, valueCache);
        if (blockMapping.Length % 2 != 0)
            throw new ArgumentException($"Length {blockMapping.Length} is odd: the mapping is (source, destination) pairs.", nameof(blockMapping));
        if (blockMapping.IsEmpty)
            return;

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* keyCachePtr = keyCache)
        fixed (T* valueCachePtr = valueCache)
        fixed (long* mappingPtr = blockMapping)
        {
            var p = new KvCacheCopyBlocksParams
            {
                Cache = Native(keyCachePtr, valueCachePtr, layout, dtype),
                BlockMapping = mappingPtr,
                NumPairs = blockMapping.Length / 2,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.KvCacheCopyBlocks(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_kv_cache_copy_blocks");
        }
    }

    /// <summary>
    /// A block table of <paramref name="numSeqs"/> rows of <paramref name="maxBlocksPerSeq"/> entries fits in
    /// <paramref name="blockTables"/> (the entries themselves are the native library's to check): for <see cref="Gather{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, PagedKvCacheLayout, ReadOnlySpan{int}, int, ReadOnlySpan{int}, Span{T}, Span{T}, CpuContext?)"/>
    /// and <see cref="O:LlmKernels.Attention.ForwardPaged"/>.
    /// </summary>
    internal static void CheckBlockTables(ReadOnlySpan<int> blockTables, int maxBlocksPerSeq, int numSeqs)
    {
        if (maxBlocksPerSeq < 0)
            throw new ArgumentOutOfRangeException(nameof(maxBlocksPerSeq), maxBlocksPerSeq, "Must be non-negative.");
        long tableEntries = (long)numSeqs * maxBlocksPerSeq;
        if (blockTables.Length < tableEntries)
            throw new ArgumentException($"Length {blockTables.Length} is less than {numSeqs} sequences x maxBlocksPerSeq ({tableEntries}).",
                                        nameof(blockTables));
    }

    private static unsafe PagedKvCache Native<T>(T* keyCache, T* valueCache, PagedKvCacheLayout layout, Dtype dtype) where T : unmanaged =>
        new()
        {
            KeyCache = keyCache,
            ValueCache = valueCache,
            NumBlocks = layout.NumBlocks,
            BlockSize = layout.BlockSize,
            NumKvHeads = layout.NumKvHeads,
            HeadDim = layout.HeadDim,
            Dtype = dtype,
        };


}
