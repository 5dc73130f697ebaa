using System.Numerics.Tensors;

namespace LlmKernels;

// The routing plan, permute and combine over tensors: the tokens, topK, rows and hidden size come from the shapes and the row
// strides from the dimension-0 strides. Each checks what a shape can get wrong, naming its C# parameter, and calls the span
// overload with what it read.
public static partial class Moe
{
    /// <summary>
    /// <see cref="Routing(ReadOnlySpan{int}, int, int, int, Span{int}, Span{int}, Span{int}, Span{int}, Span{int}, int, int, int, CpuContext?)"/>
    /// with the expert ids as a tensor: the tokens and <c>topK</c> are read from its shape.
    /// </summary>
    /// <param name="expertIds">The experts, <c>[numTokens, topK]</c> with <c>topK</c> positive, dense; each in <c>[0, numExperts)</c>.</param>
    /// <param name="numExperts">Experts in all; positive.</param>
    /// <param name="expertCounts">Written: the slots of each local expert, unpadded; at least <c>local</c> elements.</param>
    /// <param name="expertOffsets">Written: the first row of each local expert's segment, then the rows in all; at least
    /// <c>local + 1</c> elements.</param>
    /// <param name="sortedSlots">Written: the slot each row holds, -1 for padding; at least <see cref="RoutingCapacity"/> elements.</param>
    /// <param name="slotRows">Written when not empty: the row of each slot, -1 when its expert is not local; empty, or at least
    /// <c>numTokens * topK</c> elements.</param>
    /// <param name="blockExperts">Written when not empty and <paramref name="blockSize"/> is above 1: the expert id of each block of
    /// rows; empty, or at least <c>RoutingCapacity(...) / blockSize</c> elements.</param>
    /// <param name="blockSize">0 or 1 for no padding, otherwise the multiple each expert's segment is padded to.</param>
    /// <param name="expertBegin">The first local expert; with <paramref name="expertEnd"/> 0 as well, all experts are local.</param>
    /// <param name="expertEnd">One past the last local expert; 0 with <paramref name="expertBegin"/> 0 means <paramref name="numExperts"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A rank, shape, stride, size, length or overlap is wrong, or an id is out of range (naming
    /// <paramref name="expertIds"/>); nothing was written.</exception>
    public static void Routing(in ReadOnlyTensorSpan<int> expertIds, int numExperts, Span<int> expertCounts, Span<int> expertOffsets,
                               Span<int> sortedSlots, Span<int> slotRows = default, Span<int> blockExperts = default, int blockSize = 0,
                               int expertBegin = 0, int expertEnd = 0, CpuContext? context = null)
    {
        Span<int> n = stackalloc int[2];
        TensorChecks.Lengths(expertIds, 2, "[numTokens, topK]", n, nameof(expertIds));
        if (n[1] <= 0)
            throw new ArgumentException($"Shape [{n[0]}, {n[1]}]: topK must be positive.", nameof(expertIds));
        TensorChecks.DenseFrom(expertIds, 0, nameof(expertIds));
        ReadOnlySpan<int> ids = TensorChecks.Memory(expertIds, TensorChecks.Extent(expertIds, nameof(expertIds)));
        Routing(ids, n[0], n[1], numExperts, expertCounts, expertOffsets, sortedSlots, slotRows, blockExperts, blockSize, expertBegin,
                expertEnd, context);
    }

    /// <summary>
    /// <see cref="Permute{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, int, int, int, int, int, CpuContext?)"/> over tensors: the
    /// tokens and hidden size are read from the shape of <paramref name="input"/>, and each tensor's row stride from its dimension-0
    /// stride.
    /// </summary>
    /// <param name="input">The token rows, <c>[numTokens, hidden]</c> with <c>hidden</c> positive; a row dense, any row stride of at least
    /// <c>hidden</c>.</param>
    /// <param name="output">The expert-ordered rows, <c>[sortedSlots.Length, hidden]</c>, a row dense, any row stride of at least
    /// <c>hidden</c>. Must not overlap <paramref name="input"/> or <paramref name="sortedSlots"/>.</param>
    /// <param name="sortedSlots">The slot each output row takes, each -1 (padding) or in <c>[0, numTokens * topK)</c>: the plan's
    /// <c>sortedSlots[..expertOffsets[local]]</c>.</param>
    /// <param name="topK">Experts per token, the plan's; positive.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A rank, shape, stride, size or overlap is wrong, or a slot is out of range (naming
    /// <paramref name="sortedSlots"/>); nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Permute<T>(in ReadOnlyTensorSpan<T> input, in TensorSpan<T> output, ReadOnlySpan<int> sortedSlots, int topK,
                                  CpuContext? context = null) where T : unmanaged
    {
        _ = ElementType.Of<T>(); // as in the span overload: an unsupported T before any other check
        ReadOnlySpan<T> inputMemory = Rows(input, nameof(input), out int numTokens, out int hidden, out int inputStride);
        if (hidden <= 0)
            throw new ArgumentException($"Shape [{numTokens}, {hidden}]: the hidden size must be positive.", nameof(input));
        ReadOnlyTensorSpan<T> outputView = output;
        int outputExtent = Rows(outputView, nameof(output), out int rows, out int outputHidden, out int outputStride).Length;
        if (rows != sortedSlots.Length || outputHidden != hidden)
            throw new ArgumentException($"Shape [{rows}, {outputHidden}] differs from [sortedSlots.Length, hidden] = [{sortedSlots.Length}, {hidden}].",
                                        nameof(output));
        Span<T> outputMemory = TensorChecks.Memory(output, outputExtent);
        Permute(inputMemory, outputMemory, sortedSlots, numTokens, topK, hidden, inputStride, outputStride, context);
    }

    /// <summary>
    /// <see cref="Combine{T}(ReadOnlySpan{T}, ReadOnlySpan{float}, ReadOnlySpan{int}, Span{T}, int, int, int, int, int, CpuContext?)"/> over
    /// tensors: the rows and hidden size are read from the shape of <paramref name="expertOutput"/>, the tokens and <c>topK</c> from that
    /// of <paramref name="weights"/>, and the row strides from the dimension-0 strides.
    /// </summary>
    /// <param name="expertOutput">The experts' output rows in expert order, <c>[rows, hidden]</c> with <c>hidden</c> positive; a row
    /// dense, any row stride of at least <c>hidden</c>.</param>
    /// <param name="weights">Each slot's weight, <c>[numTokens, topK]</c> with <c>topK</c> from 1 to <see cref="MaxTopK"/>, dense.</param>
    /// <param name="slotRows">Each slot's row of <paramref name="expertOutput"/> or -1, the shape of <paramref name="weights"/>, dense.</param>
    /// <param name="output">The tokens' rows, <c>[numTokens, hidden]</c>, a row dense, any row stride of at least <c>hidden</c>. Must not
    /// overlap any other argument.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A rank, shape, stride or overlap is wrong, or a row is out of range (naming
    /// <paramref name="slotRows"/>); nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Combine<T>(in ReadOnlyTensorSpan<T> expertOutput, in ReadOnlyTensorSpan<float> weights,
                                  in ReadOnlyTensorSpan<int> slotRows, in TensorSpan<T> output, CpuContext? context = null)
        where T : unmanaged
    {
        _ = ElementType.Of<T>(); // as in the span overload: an unsupported T before any other check
        ReadOnlySpan<T> expertMemory = Rows(expertOutput, nameof(expertOutput), out int rows, out int hidden, out int expertStride);
        if (hidden <= 0)
            throw new ArgumentException($"Shape [{rows}, {hidden}]: the hidden size must be positive.", nameof(expertOutput));

        Span<int> n = stackalloc int[2];
        TensorChecks.Lengths(weights, 2, "[numTokens, topK]", n, nameof(weights));
        int numTokens = n[0], topK = n[1];
        if (topK <= 0 || topK > MaxTopK)
            throw new ArgumentException($"Shape [{numTokens}, {topK}]: topK must be in [1, {MaxTopK}].", nameof(weights));
        TensorChecks.DenseFrom(weights, 0, nameof(weights));
        ReadOnlySpan<float> weightsMemory = TensorChecks.Memory(weights, TensorChecks.Extent(weights, nameof(weights)));

        TensorChecks.Lengths(slotRows, 2, "[numTokens, topK]", n, nameof(slotRows));
        if (n[0] != numTokens || n[1] != topK)
            throw new ArgumentException($"Shape [{n[0]}, {n[1]}] differs from weights' [{numTokens}, {topK}].", nameof(slotRows));
        TensorChecks.DenseFrom(slotRows, 0, nameof(slotRows));
        ReadOnlySpan<int> slotRowsMemory = TensorChecks.Memory(slotRows, TensorChecks.Extent(slotRows, nameof(slotRows)));

        ReadOnlyTensorSpan<T> outputView = output;
        int outputExtent = Rows(outputView, nameof(output), out int outputTokens, out int outputHidden, out int outputStride).Length;
        if (outputTokens != numTokens || outputHidden != hidden)
            throw new ArgumentException($"Shape [{outputTokens}, {outputHidden}] differs from [numTokens, hidden] = [{numTokens}, {hidden}].",
                                        nameof(output));
        Span<T> outputMemory = TensorChecks.Memory(output, outputExtent);

        Combine(expertMemory, weightsMemory, slotRowsMemory, outputMemory, numTokens, topK, hidden, expertStride, outputStride, context);
    }

    /// <summary>A <c>[rows, hidden]</c> tensor with its rows dense: its lengths, its row stride as the span overloads take it (0 for at
    /// most one row), and the memory it addresses.</summary>
    private static ReadOnlySpan<T> Rows<T>(in ReadOnlyTensorSpan<T> x, string name, out int rows, out int hidden, out int stride)
    {
        Span<int> n = stackalloc int[2];
        TensorChecks.Lengths(x, 2, "[rows, hidden]", n, name);
        rows = n[0];
        hidden = n[1];
        TensorChecks.DenseFrom(x, 1, name);
        stride = TensorChecks.TokenStride(x, hidden, name);
        return TensorChecks.Memory(x, TensorChecks.Extent(x, name));
    }
}
