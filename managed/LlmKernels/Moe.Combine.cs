using LlmKernels.Interop;

namespace LlmKernels;

// Combine: the experts' output rows, in the routing plan's expert order, summed back per token with the gating's weights.
public static partial class Moe
{
    /// <summary>
    /// Sums each token's expert rows back, weighted: output row <c>t</c> is the sum over <c>j</c> of
    /// <c>weights[t * topK + j] * expertOutput row slotRows[t * topK + j]</c>, accumulated in f32 in slot order and rounded once to
    /// <typeparamref name="T"/>. A slot whose row is -1 (routed to another process) adds nothing; a token with none gets zeros.
    /// </summary>
    /// <remarks>
    /// The rows of <paramref name="expertOutput"/> are the whole rows its length holds: <c>(expertOutput.Length - hidden) / stride + 1</c>
    /// (0 when it is shorter than a row), with <c>stride</c> the resolved <paramref name="expertStride"/>. Every element of
    /// <paramref name="slotRows"/> is checked (by the native library) against them before anything is written.
    /// </remarks>
    /// <param name="expertOutput">The experts' output rows in expert order, <c>[rows, expertStride]</c>, a row's
    /// <paramref name="hidden"/> elements first.</param>
    /// <param name="weights">Each slot's weight, <c>[numTokens, topK]</c> (the gating's): at least <c>numTokens * topK</c> elements.</param>
    /// <param name="slotRows">Each slot's row of <paramref name="expertOutput"/>, <c>[numTokens, topK]</c>, each -1 or a row
    /// (<see cref="Routing(ReadOnlySpan{int}, int, int, int, Span{int}, Span{int}, Span{int}, Span{int}, Span{int}, int, int, int, CpuContext?)"/>'s
    /// <c>slotRows</c>): at least <c>numTokens * topK</c> elements.</param>
    /// <param name="output">The tokens' rows, <c>[numTokens, outputStride]</c>: the first <paramref name="hidden"/> elements of each row
    /// are written, the rest left as they are. Must not overlap any other argument.</param>
    /// <param name="numTokens">Tokens; non-negative (0 does nothing).</param>
    /// <param name="topK">Experts per token: from 1 to <see cref="MaxTopK"/>.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="expertStride">Elements between rows of <paramref name="expertOutput"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="outputStride">Elements between rows of <paramref name="output"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride or overlap is wrong, or a row is out of range (naming
    /// <paramref name="slotRows"/>); nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void Combine<T>(ReadOnlySpan<T> expertOutput, ReadOnlySpan<float> weights, ReadOnlySpan<int> slotRows,
                                         Span<T> output, int numTokens, int topK, int hidden, int expertStride = 0, int outputStride = 0,
                                         CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>(); // an unsupported T before any other check
        if (numTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, "Must be non-negative.");
        if (topK <= 0 || topK > MaxTopK)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"Must be in [1, {MaxTopK}].");
        if (hidden <= 0)
            throw new ArgumentOutOfRangeException(nameof(hidden), hidden, "Must be positive.");
        long exStride = SpanChecks.RowStride(expertStride, hidden, nameof(expertStride), nameof(hidden));
        long outStride = SpanChecks.RowStride(outputStride, hidden, nameof(outputStride), nameof(hidden));
        int rows = expertOutput.Length >= hidden ? (int)((expertOutput.Length - hidden) / exStride + 1) : 0;
        long slots = (long)numTokens * topK;
        if (weights.Length < slots)
            throw new ArgumentException($"Length {weights.Length} is less than numTokens x topK ({slots}).", nameof(weights));
        if (slotRows.Length < slots)
            throw new ArgumentException($"Length {slotRows.Length} is less than numTokens x topK ({slots}).", nameof(slotRows));
        SpanChecks.TokenRows(output.Length, numTokens, outStride, hidden, nameof(output), nameof(outputStride));
        if (numTokens == 0)
            return;

        // Only what the call reads and writes must stay apart.
        ReadOnlySpan<T> read = rows == 0 ? default : expertOutput[..(int)((rows - 1) * exStride + hidden)];
        ReadOnlySpan<float> w = weights[..(int)slots];
        ReadOnlySpan<int> slotRowsRead = slotRows[..(int)slots];
        Span<T> written = output[..(int)((numTokens - 1) * outStride + hidden)];
        SpanChecks.NoOverlap<T, T>(written, read, nameof(output), nameof(expertOutput));
        SpanChecks.NoOverlap<T, float>(written, w, nameof(output), nameof(weights));
        SpanChecks.NoOverlap<T, int>(written, slotRowsRead, nameof(output), nameof(slotRows));

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* expertPtr = read)
        fixed (float* weightsPtr = w)
        fixed (int* rowsPtr = slotRowsRead)
        fixed (T* outputPtr = written)
        {
            var p = new MoeCombineParams
            {
                ExpertOutput = expertPtr,
                Weights = weightsPtr,
                SlotRows = rowsPtr,
                Output = outputPtr,
                NumTokens = numTokens,
                TopK = topK,
                NumRows = rows,
                Hidden = hidden,
                ExpertStride = exStride,
                OutputStride = outStride,
                Dtype = dtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.MoeCombine(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_moe_combine");
        }
    }
}
