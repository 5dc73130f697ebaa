using LlmKernels.Interop;

namespace LlmKernels;

// The routing plan: the gating's expert ids, [numTokens, topK], ordered by expert for grouped expert GEMMs (vLLM's
// moe_align_block_size). A token's topK choices are its slots: slot s = t * topK + j is token t's j-th expert, expertIds[s].
public static partial class Moe
{
    /// <summary>
    /// The length <see cref="Routing(ReadOnlySpan{int}, int, int, int, Span{int}, Span{int}, Span{int}, Span{int}, Span{int}, int, int, int, CpuContext?)"/>'s
    /// <c>sortedSlots</c> must have: the rows of the worst case, <c>numTokens * topK</c>, plus <c>localExperts * (blockSize - 1)</c>
    /// padding rows when <paramref name="blockSize"/> is above 1 (vLLM's <c>max_num_tokens_padded</c>).
    /// </summary>
    /// <param name="numTokens">Tokens; non-negative.</param>
    /// <param name="topK">Experts per token; positive.</param>
    /// <param name="localExperts">The experts planned for, <c>expertEnd - expertBegin</c> (all of them without expert parallelism);
    /// positive.</param>
    /// <param name="blockSize">0 or 1 for no padding, otherwise the multiple each expert's rows are padded to.</param>
    /// <returns>The capacity, in elements.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range, or the capacity exceeds <see cref="int.MaxValue"/>
    /// (naming <paramref name="numTokens"/> when the slots alone do, else <paramref name="blockSize"/>).</exception>
    public static int RoutingCapacity(int numTokens, int topK, int localExperts, int blockSize = 0)
    {
        if (numTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, "Must be non-negative.");
        if (topK <= 0)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, "Must be positive.");
        if (localExperts <= 0)
            throw new ArgumentOutOfRangeException(nameof(localExperts), localExperts, "Must be positive.");
        if (blockSize < 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "Must be 0 or 1 (no padding), or the rows to pad to.");
        return Capacity(numTokens, topK, localExperts, blockSize);
    }

    /// <summary>
    /// The routing plan's scalar arguments, checked as both the CPU and the CUDA <c>Routing</c> check them: the local experts' end
    /// (<paramref name="expertEnd"/> resolved), their count, and the capacity <c>sortedSlots</c> needs.
    /// </summary>
    private static (int End, int Local, int Capacity) CheckRoutingSizes(int numTokens, int topK, int numExperts, int blockSize,
                                                                       int expertBegin, int expertEnd)
    {
        if (numTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, "Must be non-negative.");
        if (topK <= 0)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, "Must be positive.");
        if (numExperts <= 0)
            throw new ArgumentOutOfRangeException(nameof(numExperts), numExperts, "Must be positive.");
        int end = expertBegin == 0 && expertEnd == 0 ? numExperts : expertEnd;
        if (expertBegin < 0 || expertBegin >= numExperts)
            throw new ArgumentOutOfRangeException(nameof(expertBegin), expertBegin, $"Must be in [0, numExperts = {numExperts}).");
        if (end <= expertBegin || end > numExperts)
            throw new ArgumentOutOfRangeException(nameof(expertEnd), expertEnd,
                                                  $"Must be in (expertBegin = {expertBegin}, numExperts = {numExperts}], or 0 with expertBegin 0 for all experts.");
        if (blockSize < 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "Must be 0 or 1 (no padding), or the rows to pad to.");
        int local = end - expertBegin;
        int capacity = Capacity(numTokens, topK, local, blockSize);
        return (end, local, capacity);
    }

    /// <summary>The capacity of valid sizes, throwing when it does not fit an int.</summary>
    private static int Capacity(int numTokens, int topK, int localExperts, int blockSize)
    {
        long slots = (long)numTokens * topK;
        if (slots > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens,
                                                  $"numTokens x topK ({topK}) = {slots} slots exceed {int.MaxValue}.");
        long capacity = slots + (blockSize > 1 ? (long)localExperts * (blockSize - 1) : 0);
        if (capacity > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize,
                                                  $"The plan's {slots} slots and the padding of {localExperts} experts to multiples of {blockSize} " +
                                                  $"({capacity} rows) exceed {int.MaxValue}.");
        return (int)capacity;
    }

    /// <summary>
    /// Plans the grouped expert GEMMs: orders the slots routed to the local experts <c>[expertBegin, expertEnd)</c> by expert,
    /// stable (ascending slot order inside an expert, so token order is kept), each expert's rows one contiguous segment,
    /// optionally padded to a multiple of <paramref name="blockSize"/> rows (vLLM's <c>moe_align_block_size</c>).
    /// Slot <c>s = t * topK + j</c> is token <c>t</c>'s <c>j</c>-th choice, <c>expertIds[s]</c>.
    /// </summary>
    /// <remarks>
    /// The rows in all are <c>expertOffsets[local]</c> (<c>local = expertEnd - expertBegin</c>): pass
    /// <c>sortedSlots[..expertOffsets[local]]</c> to <see cref="Permute{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, int, int, int, int, int, CpuContext?)"/>,
    /// and <paramref name="slotRows"/> to <see cref="Combine{T}(ReadOnlySpan{T}, ReadOnlySpan{float}, ReadOnlySpan{int}, Span{T}, int, int, int, int, int, CpuContext?)"/>.
    /// Every id is checked (by the native library) before anything is written.
    /// </remarks>
    /// <param name="expertIds">The experts, <c>[numTokens, topK]</c> (<see cref="Gating{T}(ReadOnlySpan{T}, Span{float}, Span{int}, int, int, int, MoeGatingOptions?, ReadOnlySpan{float}, int, CpuContext?)"/>'s):
    /// at least <c>numTokens * topK</c> elements, each in <c>[0, numExperts)</c>.</param>
    /// <param name="numTokens">Tokens; non-negative (0 plans no rows).</param>
    /// <param name="topK">Experts per token; positive.</param>
    /// <param name="numExperts">Experts in all; positive.</param>
    /// <param name="expertCounts">Written: <c>expertCounts[e]</c> is the slots routed to local expert <c>e</c> (id
    /// <c>expertBegin + e</c>), unpadded. At least <c>local</c> elements; the first <c>local</c> are written.</param>
    /// <param name="expertOffsets">Written: <c>expertOffsets[e]</c> is the first row of local expert <c>e</c>'s segment, and
    /// <c>expertOffsets[local]</c> the rows in all. At least <c>local + 1</c> elements; the first <c>local + 1</c> are written.</param>
    /// <param name="sortedSlots">Written: the slot each row holds, or -1 for a padding row; rows past <c>expertOffsets[local]</c> are
    /// left as they are. At least <see cref="RoutingCapacity"/><c>(numTokens, topK, local, blockSize)</c> elements.</param>
    /// <param name="slotRows">Written when not empty: the inverse, the row of each slot, or -1 when its expert is not local (routed to
    /// another process under expert parallelism), <c>[numTokens, topK]</c>. Empty, or at least <c>numTokens * topK</c> elements.</param>
    /// <param name="blockExperts">Written when not empty and <paramref name="blockSize"/> is above 1 (otherwise ignored): the (global)
    /// expert id of each block of <paramref name="blockSize"/> rows, for the <c>expertOffsets[local] / blockSize</c> blocks. Empty, or
    /// at least <c>RoutingCapacity(...) / blockSize</c> elements.</param>
    /// <param name="blockSize">0 or 1 for no padding, otherwise the multiple each expert's segment is padded to.</param>
    /// <param name="expertBegin">The first local expert; with <paramref name="expertEnd"/> 0 as well, all experts are local.</param>
    /// <param name="expertEnd">One past the last local expert, in <c>(expertBegin, numExperts]</c>; 0 with <paramref name="expertBegin"/>
    /// 0 means <paramref name="numExperts"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A size, length or overlap is wrong (the outputs must not overlap each other or
    /// <paramref name="expertIds"/>; of two outputs the earlier parameter is named), or an id is out of range (naming
    /// <paramref name="expertIds"/>); nothing was written.</exception>
    public static unsafe void Routing(ReadOnlySpan<int> expertIds, int numTokens, int topK, int numExperts, Span<int> expertCounts,
                                      Span<int> expertOffsets, Span<int> sortedSlots, Span<int> slotRows = default,
                                      Span<int> blockExperts = default, int blockSize = 0, int expertBegin = 0, int expertEnd = 0,
                                      CpuContext? context = null)
    {
        (int end, int local, int capacity) = CheckRoutingSizes(numTokens, topK, numExperts, blockSize, expertBegin, expertEnd);
        int slots = numTokens * topK; // fits: Capacity checked it
        int blocks = blockSize > 1 ? capacity / blockSize : 0;
        if (expertIds.Length < slots)
            throw new ArgumentException($"Length {expertIds.Length} is less than numTokens x topK ({slots}).", nameof(expertIds));
        if (expertCounts.Length < local)
            throw new ArgumentException($"Length {expertCounts.Length} is less than the {local} local experts.", nameof(expertCounts));
        if (expertOffsets.Length < local + 1)
            throw new ArgumentException($"Length {expertOffsets.Length} is less than the {local} local experts + 1.", nameof(expertOffsets));
        if (sortedSlots.Length < capacity)
            throw new ArgumentException($"Length {sortedSlots.Length} is less than RoutingCapacity ({capacity}): numTokens x topK " +
                                        $"+ local experts x (blockSize - 1) when blockSize > 1.", nameof(sortedSlots));
        if (!slotRows.IsEmpty && slotRows.Length < slots)
            throw new ArgumentException($"Length {slotRows.Length} is less than numTokens x topK ({slots}); empty for none.", nameof(slotRows));
        if (blocks > 0 && !blockExperts.IsEmpty && blockExperts.Length < blocks)
            throw new ArgumentException($"Length {blockExperts.Length} is less than RoutingCapacity / blockSize ({blocks}); empty for none.",
                                        nameof(blockExperts));

        // Only what the call reads and writes must stay apart.
        ReadOnlySpan<int> ids = expertIds[..slots];
        Span<int> counts = expertCounts[..local], offsets = expertOffsets[..(local + 1)], sorted = sortedSlots[..capacity];
        Span<int> rows = slotRows.IsEmpty ? default : slotRows[..slots];
        Span<int> blockIds = blocks > 0 && !blockExperts.IsEmpty ? blockExperts[..blocks] : default;
        SpanChecks.NoOverlap<int, int>(counts, ids, nameof(expertCounts), nameof(expertIds));
        SpanChecks.NoOverlap<int, int>(offsets, ids, nameof(expertOffsets), nameof(expertIds));
        SpanChecks.NoOverlap<int, int>(sorted, ids, nameof(sortedSlots), nameof(expertIds));
        SpanChecks.NoOverlap<int, int>(rows, ids, nameof(slotRows), nameof(expertIds));
        SpanChecks.NoOverlap<int, int>(blockIds, ids, nameof(blockExperts), nameof(expertIds));
        SpanChecks.NoOverlap<int, int>(counts, offsets, nameof(expertCounts), nameof(expertOffsets));
        SpanChecks.NoOverlap<int, int>(counts, sorted, nameof(expertCounts), nameof(sortedSlots));
        SpanChecks.NoOverlap<int, int>(counts, rows, nameof(expertCounts), nameof(slotRows));
        SpanChecks.NoOverlap<int, int>(counts, blockIds, nameof(expertCounts), nameof(blockExperts));
        SpanChecks.NoOverlap<int, int>(offsets, sorted, nameof(expertOffsets), nameof(sortedSlots));
        SpanChecks.NoOverlap<int, int>(offsets, rows, nameof(expertOffsets), nameof(slotRows));
        SpanChecks.NoOverlap<int, int>(offsets, blockIds, nameof(expertOffsets), nameof(blockExperts));
        SpanChecks.NoOverlap<int, int>(sorted, rows, nameof(sortedSlots), nameof(slotRows));
        SpanChecks.NoOverlap<int, int>(sorted, blockIds, nameof(sortedSlots), nameof(blockExperts));
        SpanChecks.NoOverlap<int, int>(rows, blockIds, nameof(slotRows), nameof(blockExperts));

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (int* idsPtr = ids)
        fixed (int* countsPtr = counts)
        fixed (int* offsetsPtr = offsets)
        fixed (int* sortedPtr = sorted)
        fixed (int* rowsPtr = rows)
        fixed (int* blocksPtr = blockIds)
        {
            // An empty span pins to null: the native side reads and writes none of those.
            var p = new MoeRoutingParams
            {
                ExpertIds = idsPtr,
                NumTokens = numTokens,
                TopK = topK,
                NumExperts = numExperts,
                ExpertBegin = expertBegin,
                ExpertEnd = end,
                BlockSize = blockSize,
                ExpertCounts = countsPtr,
                ExpertOffsets = offsetsPtr,
                SortedSlots = sortedPtr,
                SortedCapacity = capacity,
                SlotRows = rowsPtr,
                BlockExperts = blocksPtr,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.MoeRouting(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_moe_routing");
        }
    }
}
