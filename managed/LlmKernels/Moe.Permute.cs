using LlmKernels.Interop;

namespace LlmKernels;

// Permute: the token rows gathered into the routing plan's expert order, for the grouped expert GEMMs.
public static partial class Moe
{
    /// <summary>
    /// Gathers token rows into expert order: output row <c>r</c> is input row <c>sortedSlots[r] / topK</c> (the token of that
    /// slot), copied bit for bit; a padding row (<c>sortedSlots[r] == -1</c>) is written as zeros.
    /// </summary>
    /// <remarks>
    /// The rows are <c>sortedSlots.Length</c>: pass the plan's rows only, <c>sortedSlots[..expertOffsets[local]]</c> of
    /// <see cref="Routing(ReadOnlySpan{int}, int, int, int, Span{int}, Span{int}, Span{int}, Span{int}, Span{int}, int, int, int, CpuContext?)"/>,
    /// not its whole capacity (the rows past them are not written by the plan). Every element of <paramref name="sortedSlots"/> is
    /// checked (by the native library) before anything is written.
    /// </remarks>
    /// <param name="input">The token rows, <c>[numTokens, inputStride]</c>, a row's <paramref name="hidden"/> elements first.</param>
    /// <param name="output">The expert-ordered rows, <c>[sortedSlots.Length, outputStride]</c>: the first <paramref name="hidden"/>
    /// elements of each row are written, the rest left as they are. Must not overlap <paramref name="input"/> or
    /// <paramref name="sortedSlots"/>.</param>
    /// <param name="sortedSlots">The slot each output row takes, each -1 (padding) or in <c>[0, numTokens * topK)</c>.</param>
    /// <param name="numTokens">Tokens (rows of <paramref name="input"/>); non-negative.</param>
    /// <param name="topK">Experts per token, the plan's; positive.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="inputStride">Elements between rows of <paramref name="input"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="outputStride">Elements between rows of <paramref name="output"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride or overlap is wrong, or a slot is out of range (naming
    /// <paramref name="sortedSlots"/>); nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void Permute<T>(ReadOnlySpan<T> input, Span<T> output, ReadOnlySpan<int> sortedSlots, int numTokens, int topK,
                                         int hidden, int inputStride = 0, int outputStride = 0, CpuContext? context = null)
        where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>(); // an unsupported T before any other check
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
        int rows = sortedSlots.Length;
        SpanChecks.TokenRows(output.Length, rows, outStride, hidden, nameof(output), nameof(outputStride), "rows (sortedSlots.Length)");
        if (rows == 0)
            return;

        // Only what the call reads and writes must stay apart.
        ReadOnlySpan<T> read = numTokens == 0 ? default : input[..(int)((numTokens - 1) * inStride + hidden)];
        Span<T> written = output[..(int)((rows - 1) * outStride + hidden)];
        SpanChecks.NoOverlap<T, T>(written, read, nameof(output), nameof(input));
        SpanChecks.NoOverlap<T, int>(written, sortedSlots, nameof(output), nameof(sortedSlots));

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* inputPtr = read)
        fixed (T* outputPtr = written)
        fixed (int* slotsPtr = sortedSlots)
        {
            var p = new MoePermuteParams
            {
                Input = inputPtr,
                Output = outputPtr,
                SortedSlots = slotsPtr,
                NumTokens = numTokens,
                TopK = topK,
                NumRows = rows,
                Hidden = hidden,
                InputStride = inStride,
                OutputStride = outStride,
                Dtype = dtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.MoePermute(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_moe_permute");
        }
    }
}
