namespace LlmKernels;

/// <summary>
/// The shape of one layer's paged KV cache in vLLM's flash layout: the key cache and the value cache
/// are each <c>[NumBlocks, BlockSize, NumKvHeads, HeadDim]</c>, contiguous. Slot
/// <c>block * BlockSize + offset</c> names one token's row of <see cref="RowElements"/> in both.
/// Every dimension must be positive; <see cref="KvCache"/> checks that at each call, since
/// <c>default</c> is all zeros. The sizes are longs, computed checked: a layout past <see cref="long.MaxValue"/>
/// elements throws <see cref="OverflowException"/>.
/// </summary>
/// <param name="NumBlocks">Blocks (pages) in the cache.</param>
/// <param name="BlockSize">Tokens per block: 16 in vLLM by default.</param>
/// <param name="NumKvHeads">Key/value heads per token.</param>
/// <param name="HeadDim">Elements per head.</param>
public readonly record struct PagedKvCacheLayout(int NumBlocks, int BlockSize, int NumKvHeads, int HeadDim)
{
    /// <summary>Token slots in the cache: <c>NumBlocks * BlockSize</c>; a slot mapping names <c>[0, SlotCount)</c>.</summary>
    public long SlotCount => (long)NumBlocks * BlockSize;

    /// <summary>Elements in one token's row: <c>NumKvHeads * HeadDim</c>.</summary>
    public long RowElements => (long)NumKvHeads * HeadDim;

    /// <summary>Elements in one block: <c>BlockSize * RowElements</c>.</summary>
    public long BlockElements => checked(BlockSize * RowElements);

    /// <summary>Elements in the key cache, and in the value cache: <c>NumBlocks * BlockSize * NumKvHeads * HeadDim</c>.</summary>
    public long CacheElements => checked(NumBlocks * BlockElements);

    /// <summary>
    /// The layout's dimensions are positive and each cache is exactly <see cref="CacheElements"/> long, the two
    /// apart: what <see cref="KvCache"/> and <see cref="Attention"/> check before every call.
    /// </summary>
    internal void CheckCaches<T>(ReadOnlySpan<T> keyCache, ReadOnlySpan<T> valueCache) where T : unmanaged
    {
        if (NumBlocks <= 0 || BlockSize <= 0 || NumKvHeads <= 0 || HeadDim <= 0)
            throw new ArgumentOutOfRangeException("layout", this, "Every dimension must be positive.");
        // In Int128 so an absurd layout cannot wrap around to a span's length.
        Int128 elements = (Int128)NumBlocks * BlockSize * NumKvHeads * HeadDim;
        if (elements > Array.MaxLength)
            throw new ArgumentOutOfRangeException("layout", this, $"{elements} elements per cache exceeds {Array.MaxLength}.");
        if (keyCache.Length != elements)
            throw new ArgumentException($"Length {keyCache.Length} differs from layout.CacheElements ({elements}).", nameof(keyCache));
        if (valueCache.Length != elements)
            throw new ArgumentException($"Length {valueCache.Length} differs from layout.CacheElements ({elements}).", nameof(valueCache));
        SpanChecks.NoOverlap(keyCache, valueCache, nameof(valueCache), nameof(keyCache));
    }

    /// <summary><see cref="CheckCaches{T}"/> for device caches of <paramref name="keyCacheLength"/> and <paramref name="valueCacheLength"/>
    /// elements, which may pass <see cref="Array.MaxLength"/> (the caller checks they are apart, from their addresses).</summary>
    internal void CheckDeviceCaches(long keyCacheLength, long valueCacheLength)
    {
        if (NumBlocks <= 0 || BlockSize <= 0 || NumKvHeads <= 0 || HeadDim <= 0)
            throw new ArgumentOutOfRangeException("layout", this, "Every dimension must be positive.");
        Int128 elements = (Int128)NumBlocks * BlockSize * NumKvHeads * HeadDim;
        if (elements > long.MaxValue / 4)
            throw new ArgumentOutOfRangeException("layout", this, $"{elements} elements per cache exceeds the address space.");
        if (keyCacheLength != elements)
            throw new ArgumentException($"Length {keyCacheLength} differs from layout.CacheElements ({elements}).", "keyCache");
        if (valueCacheLength != elements)
            throw new ArgumentException($"Length {valueCacheLength} differs from layout.CacheElements ({elements}).", "valueCache");
    }
}
