namespace LlmKernels;

// MoE gating, the routing plan, permute and combine on a CUDA device: the span overloads' parameters, defaults and checks over
// device views. Ids and rows read from device memory are checked by the kernels (docs/cuda/managed.md).
public static partial class Moe
{
    /// <summary>
    /// Routes tokens on a CUDA device (<c>lk_cuda_moe_gating</c>): what
    /// <see cref="Gating{T}(ReadOnlySpan{T}, Span{float}, Span{int}, int, int, int, MoeGatingOptions?, ReadOnlySpan{float}, int, CpuContext?)"/>
    /// computes, with the same ranking rules (ties to the lower id). Queued on <paramref name="stream"/>.
    /// </summary>
    /// <param name="logits">Router logits, <c>[numTokens, logitsStride]</c>, a token's <paramref name="numExperts"/> first.</param>
    /// <param name="weights">The weights, <c>[numTokens, topK]</c>: at least <c>numTokens * topK</c> elements. Must not overlap any other argument.</param>
    /// <param name="expertIds">The experts, <c>[numTokens, topK]</c>: at least <c>numTokens * topK</c> elements. Must not overlap any other argument.</param>
    /// <param name="numTokens">Tokens; non-negative (0 does nothing).</param>
    /// <param name="numExperts">Experts (logits per token); positive.</param>
    /// <param name="topK">Experts per token: from 1 to <c>min(</c><see cref="MaxTopK"/><c>, numExperts)</c>.</param>
    /// <param name="options">Scoring, groups, renormalisation and scaling; null means <see cref="MoeGatingOptions"/>' defaults.</param>
    /// <param name="correctionBias">Added to each expert's score to choose the experts, <c>[numExperts]</c>; or empty for none.</param>
    /// <param name="logitsStride">Elements between tokens of <paramref name="logits"/>; 0 means <paramref name="numExperts"/>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride, option or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Gating<T>(DeviceSpan<T> logits, DeviceSpan<float> weights, DeviceSpan<int> expertIds, int numTokens, int numExperts,
                                 int topK, MoeGatingOptions? options = null, DeviceSpan<float> correctionBias = default, int logitsStride = 0,
                                 CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        options ??= s_defaultOptions;
        (long stride, long outputs, _) = CheckGatingSizes(numTokens, numExperts, topK, options, logitsStride, logits.Length, weights.Length,
                                                          expertIds.Length, correctionBias.Length);
        if (numTokens == 0)
            return;

        // Only what the call reads and writes must stay apart.
        using var call = new DeviceCall(stream);
        DeviceRange read = call.Range(DeviceChecks.Rows(logits, numTokens, stride, numExperts), nameof(logits));
        DeviceRange w = call.Range(weights.Slice(0, outputs), nameof(weights)), ids = call.Range(expertIds.Slice(0, outputs), nameof(expertIds));
        DeviceRange bias = call.Range(correctionBias, nameof(correctionBias));
        DeviceChecks.NoOverlap(w, ids, nameof(weights), nameof(expertIds));
        DeviceChecks.NoOverlap(w, read, nameof(weights), nameof(logits));
        DeviceChecks.NoOverlap(w, bias, nameof(weights), nameof(correctionBias));
        DeviceChecks.NoOverlap(ids, read, nameof(expertIds), nameof(logits));
        DeviceChecks.NoOverlap(ids, bias, nameof(expertIds), nameof(correctionBias));
        CudaKernels.MoeGating(read.Address, w.Address, ids.Address, numTokens, numExperts, topK, dataType, options, bias.Address, stride,
                              call.Stream);
    }

    /// <summary>
    /// Plans the grouped expert GEMMs on a CUDA device (<c>lk_cuda_moe_routing</c>): what
    /// <see cref="Routing(ReadOnlySpan{int}, int, int, int, Span{int}, Span{int}, Span{int}, Span{int}, Span{int}, int, int, int, CpuContext?)"/>
    /// computes. An expert id outside <c>[0, numExperts)</c> is found by the kernel and reported by the next
    /// <see cref="CudaStream.Synchronize"/> (naming <c>expertIds</c>).
    /// </summary>
    /// <remarks>
    /// The plan's row count, <c>expertOffsets[local]</c>, is on the device. To permute without reading it back, fill
    /// <paramref name="sortedSlots"/> with -1 first (<see cref="DeviceSpan{T}.Memset"/> with <c>0xff</c>) and pass its whole capacity
    /// to <see cref="Permute{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{int}, int, int, int, int, int, CudaStream?)"/>: rows past the
    /// plan are then padding, written as zeros.
    /// </remarks>
    /// <param name="expertIds">The experts, <c>[numTokens, topK]</c>: at least <c>numTokens * topK</c> elements.</param>
    /// <param name="numTokens">Tokens; non-negative (0 plans no rows).</param>
    /// <param name="topK">Experts per token; positive.</param>
    /// <param name="numExperts">Experts in all; positive.</param>
    /// <param name="expertCounts">Written: the slots of each local expert; at least <c>local</c> elements.</param>
    /// <param name="expertOffsets">Written: each local expert's first row, then the rows in all; at least <c>local + 1</c> elements.</param>
    /// <param name="sortedSlots">Written: the slot each row holds, or -1 for padding; at least <see cref="RoutingCapacity"/> elements.</param>
    /// <param name="slotRows">Written when not empty: the row of each slot, or -1; empty, or at least <c>numTokens * topK</c> elements.</param>
    /// <param name="blockExperts">Written when not empty and <paramref name="blockSize"/> is above 1: each block's expert.</param>
    /// <param name="blockSize">0 or 1 for no padding, otherwise the multiple each expert's segment is padded to.</param>
    /// <param name="expertBegin">The first local expert; with <paramref name="expertEnd"/> 0 as well, all experts are local.</param>
    /// <param name="expertEnd">One past the last local expert, in <c>(expertBegin, numExperts]</c>; 0 with <paramref name="expertBegin"/> 0 means <paramref name="numExperts"/>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A size, length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    public static void Routing(DeviceSpan<int> expertIds, int numTokens, int topK, int numExperts, DeviceSpan<int> expertCounts,
                               DeviceSpan<int> expertOffsets, DeviceSpan<int> sortedSlots, DeviceSpan<int> slotRows = default,
                               DeviceSpan<int> blockExperts = default, int blockSize = 0, int expertBegin = 0, int expertEnd = 0,
                               CudaStream? stream = null)
    {
        (int end, int local, int capacity) = CheckRoutingSizes(numTokens, topK, numExperts, blockSize, expertBegin, expertEnd);
        int slots = numTokens * topK;
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

        using var call = new DeviceCall(stream);
        DeviceRange ids = call.Range(expertIds.Slice(0, slots), nameof(expertIds));
        DeviceRange counts = call.Range(expertCounts.Slice(0, local), nameof(expertCounts));
        DeviceRange offsets = call.Range(expertOffsets.Slice(0, local + 1), nameof(expertOffsets));
        DeviceRange sorted = call.Range(sortedSlots.Slice(0, capacity), nameof(sortedSlots));
        DeviceRange rows = call.Range(slotRows.IsEmpty ? default : slotRows.Slice(0, slots), nameof(slotRows));
        DeviceRange blockIds = call.Range(blocks > 0 && !blockExperts.IsEmpty ? blockExperts.Slice(0, blocks) : default, nameof(blockExperts));
        DeviceChecks.NoOverlap(counts, ids, nameof(expertCounts), nameof(expertIds));
        DeviceChecks.NoOverlap(offsets, ids, nameof(expertOffsets), nameof(expertIds));
        DeviceChecks.NoOverlap(sorted, ids, nameof(sortedSlots), nameof(expertIds));
        DeviceChecks.NoOverlap(rows, ids, nameof(slotRows), nameof(expertIds));
        DeviceChecks.NoOverlap(blockIds, ids, nameof(blockExperts), nameof(expertIds));
        DeviceChecks.NoOverlap(counts, offsets, nameof(expertCounts), nameof(expertOffsets));
        DeviceChecks.NoOverlap(counts, sorted, nameof(expertCounts), nameof(sortedSlots));
        DeviceChecks.NoOverlap(counts, rows, nameof(expertCounts), nameof(slotRows));
        DeviceChecks.NoOverlap(counts, blockIds, nameof(expertCounts), nameof(blockExperts));
        DeviceChecks.NoOverlap(offsets, sorted, nameof(expertOffsets), nameof(sortedSlots));
        DeviceChecks.NoOverlap(offsets, rows, nameof(expertOffsets), nameof(slotRows));
        DeviceChecks.NoOverlap(offsets, blockIds, nameof(expertOffsets), nameof(blockExperts));
        DeviceChecks.NoOverlap(sorted, rows, nameof(sortedSlots), nameof(slotRows));
        DeviceChecks.NoOverlap(sorted, blockIds, nameof(sortedSlots), nameof(blockExperts));
        DeviceChecks.NoOverlap(rows, blockIds, nameof(slotRows), nameof(blockExperts));
        CudaKernels.MoeRouting(ids.Address, numTokens, topK, numExperts, counts.Address, offsets.Address, sorted.Address, capacity,
                               rows.Address, blockIds.Address, blockSize, expertBegin, end, call.Stream);
    }

    /// <summary>
    /// Gathers token rows into expert order on a CUDA device (<c>lk_cuda_moe_permute</c>): what
    /// <see cref="Permute{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, int, int, int, int, int, CpuContext?)"/> does. A slot outside
    /// <c>[0, numTokens * topK)</c> (and not -1) is found by the kernel and reported by the next <see cref="CudaStream.Synchronize"/>
    /// (naming <c>sortedSlots</c>).
    /// </summary>
    /// <param name="input">The token rows, <c>[numTokens, inputStride]</c>.</param>
    /// <param name="output">The expert-ordered rows, <c>[sortedSlots.Length, outputStride]</c>. Must not overlap <paramref name="input"/> or <paramref name="sortedSlots"/>.</param>
    /// <param name="sortedSlots">The slot each output row takes, each -1 (padding) or in <c>[0, numTokens * topK)</c>.</param>
    /// <param name="numTokens">Tokens (rows of <paramref name="input"/>); non-negative.</param>
    /// <param name="topK">Experts per token, the plan's; positive.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="inputStride">Elements between rows of <paramref name="input"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="outputStride">Elements between rows of <paramref name="output"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Permute<T>(DeviceSpan<T> input, DeviceSpan<T> output, DeviceSpan<int> sortedSlots, int numTokens, int topK, int hidden,
                                  int inputStride = 0, int outputStride = 0, CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        if (numTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, "Must be non-negative.");
        if (topK <= 0)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, "Must be positive.");
        if ((long)numTokens * topK > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, $"numTokens x topK ({topK}) slots exceed {int.MaxValue}.");
        if (hidden <= 0)
            throw new ArgumentOutOfRangeException(nameof(hidden), hidden, "Must be positive.");
        long inStride = SpanChecks.RowStride(inputStride, hidden, nameof(inputStride), nameof(hidden));
        long outStride = SpanChecks.RowStride(outputStride, hidden, nameof(outputStride), nameof(hidden));
        SpanChecks.TokenRows(input.Length, numTokens, inStride, hidden, nameof(input), nameof(inputStride));
        long rows = sortedSlots.Length;
        SpanChecks.TokenRows(output.Length, rows, outStride, hidden, nameof(output), nameof(outputStride), "rows (sortedSlots.Length)");
        if (rows == 0)
            return;

        using var call = new DeviceCall(stream);
        DeviceRange read = call.Range(DeviceChecks.Rows(input, numTokens, inStride, hidden), nameof(input));
        DeviceRange written = call.Range(DeviceChecks.Rows(output, rows, outStride, hidden), nameof(output));
        DeviceRange slots = call.Range(sortedSlots, nameof(sortedSlots));
        DeviceChecks.NoOverlap(written, read, nameof(output), nameof(input));
        DeviceChecks.NoOverlap(written, slots, nameof(output), nameof(sortedSlots));
        CudaKernels.MoePermute(read.Address, written.Address, slots.Address, rows, numTokens, topK, hidden, dataType, inStride, outStride,
                               call.Stream);
    }

    /// <summary>
    /// Sums each token's expert rows back, weighted, on a CUDA device (<c>lk_cuda_moe_combine</c>): what
    /// <see cref="Combine{T}(ReadOnlySpan{T}, ReadOnlySpan{float}, ReadOnlySpan{int}, Span{T}, int, int, int, int, int, CpuContext?)"/>
    /// computes (f32 accumulation in slot order, rounded once). A row outside <paramref name="expertOutput"/> (and not -1) is found by
    /// the kernel and reported by the next <see cref="CudaStream.Synchronize"/> (naming <c>slotRows</c>).
    /// </summary>
    /// <param name="expertOutput">The experts' output rows in expert order, <c>[rows, expertStride]</c>.</param>
    /// <param name="weights">Each slot's weight, <c>[numTokens, topK]</c>: at least <c>numTokens * topK</c> elements.</param>
    /// <param name="slotRows">Each slot's row of <paramref name="expertOutput"/>, <c>[numTokens, topK]</c>: at least <c>numTokens * topK</c> elements.</param>
    /// <param name="output">The tokens' rows, <c>[numTokens, outputStride]</c>. Must not overlap any other argument.</param>
    /// <param name="numTokens">Tokens; non-negative (0 does nothing).</param>
    /// <param name="topK">Experts per token: from 1 to <see cref="MaxTopK"/>.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="expertStride">Elements between rows of <paramref name="expertOutput"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="outputStride">Elements between rows of <paramref name="output"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Combine<T>(DeviceSpan<T> expertOutput, DeviceSpan<float> weights, DeviceSpan<int> slotRows, DeviceSpan<T> output,
                                  int numTokens, int topK, int hidden, int expertStride = 0, int outputStride = 0, CudaStream? stream = null)
        where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        if (numTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, "Must be non-negative.");
        if (topK <= 0 || topK > MaxTopK)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"Must be in [1, {MaxTopK}].");
        if (hidden <= 0)
            throw new ArgumentOutOfRangeException(nameof(hidden), hidden, "Must be positive.");
        long exStride = SpanChecks.RowStride(expertStride, hidden, nameof(expertStride), nameof(hidden));
        long outStride = SpanChecks.RowStride(outputStride, hidden, nameof(outputStride), nameof(hidden));
        long rows = expertOutput.Length >= hidden ? (expertOutput.Length - hidden) / exStride + 1 : 0;
        long slots = (long)numTokens * topK;
        if (weights.Length < slots)
            throw new ArgumentException($"Length {weights.Length} is less than numTokens x topK ({slots}).", nameof(weights));
        if (slotRows.Length < slots)
            throw new ArgumentException($"Length {slotRows.Length} is less than numTokens x topK ({slots}).", nameof(slotRows));
        SpanChecks.TokenRows(output.Length, numTokens, outStride, hidden, nameof(output), nameof(outputStride));
        if (numTokens == 0)
            return;

        using var call = new DeviceCall(stream);
        DeviceRange read = call.Range(DeviceChecks.Rows(expertOutput, rows, exStride, hidden), nameof(expertOutput));
        DeviceRange w = call.Range(weights.Slice(0, slots), nameof(weights));
        DeviceRange slotRowsRead = call.Range(slotRows.Slice(0, slots), nameof(slotRows));
        DeviceRange written = call.Range(DeviceChecks.Rows(output, numTokens, outStride, hidden), nameof(output));
        DeviceChecks.NoOverlap(written, read, nameof(output), nameof(expertOutput));
        DeviceChecks.NoOverlap(written, w, nameof(output), nameof(weights));
        DeviceChecks.NoOverlap(written, slotRowsRead, nameof(output), nameof(slotRows));
        CudaKernels.MoeCombine(read.Address, w.Address, slotRowsRead.Address, written.Address, rows, numTokens, topK, hidden, dataType,
                               exStride, outStride, call.Stream);
    }
}
