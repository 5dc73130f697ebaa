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
}
