using System.Numerics.Tensors;

namespace LlmKernels;

/// <summary>
/// The shaped overloads: q, k, v and the output as <c>[tokens, heads, headDim]</c> tensors and the paged caches as
/// <c>[numBlocks, blockSize, numKvHeads, headDim]</c>, so the head counts, head dimension and token strides come from the shapes.
/// Each checks what a shape can get wrong, naming its C# parameter, and calls the span overload with what it read.
/// </summary>
public static partial class Attention
{
    /// <summary>
    /// <see cref="Forward{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, ReadOnlySpan{int}, int, int, int, AttentionOptions?, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{float}, int, int, int, int, CpuContext?)"/>
    /// over tensors: the number of heads, key/value heads and the head dimension are read from the shapes, and each tensor's token
    /// stride from its dimension-0 stride, so q, k and v may be views into one fused qkv tensor.
    /// </summary>
    /// <param name="q">Queries, <c>[tokens, numHeads, headDim]</c>; at least <c>cuSeqlensQ[^1]</c> tokens (later ones are not read).
    /// Heads and head dimension dense (strides <c>headDim</c> and 1); any token stride of at least <c>numHeads * headDim</c>.</param>
    /// <param name="k">Keys, <c>[tokens, numKvHeads, headDim]</c>; at least <c>cuSeqlensK[^1]</c> tokens; dense like
    /// <paramref name="q"/>. <c>numKvHeads</c> divides <c>numHeads</c>, and the head dimension is <paramref name="q"/>'s.</param>
    /// <param name="v">Values, the shape of <paramref name="k"/>; its token stride may differ.</param>
    /// <param name="output">The result, the shape of <paramref name="q"/>, dense like it; elements between a token's heads and the next
    /// token, and tokens past <c>cuSeqlensQ[^1]</c>, are left as they are. Must not overlap any other argument.</param>
    /// <param name="cuSeqlensQ">Query offsets, <c>[sequences + 1]</c>: from 0, non-decreasing.</param>
    /// <param name="cuSeqlensK">Key offsets, as long as <paramref name="cuSeqlensQ"/>: from 0, non-decreasing.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="alibiSlopes">ALiBi slopes, <c>[numHeads]</c>, or empty for none.</param>
    /// <param name="bias">An additive bias, or empty for none, as in the span overload.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>; non-negative.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>; positive when a bias is given.</param>
    /// <param name="lse">The log-sum-exp of each query head's scores, <c>[tokens, numHeads]</c> with <paramref name="q"/>'s tokens,
    /// dense; or <c>default</c> for none.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A rank, shape, stride, option, overlap or offset is wrong; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Forward<T>(in ReadOnlyTensorSpan<T> q, in ReadOnlyTensorSpan<T> k, in ReadOnlyTensorSpan<T> v,
                                  in TensorSpan<T> output, ReadOnlySpan<int> cuSeqlensQ, ReadOnlySpan<int> cuSeqlensK,
                                  AttentionOptions? options = null, ReadOnlySpan<float> alibiSlopes = default,
                                  ReadOnlySpan<float> bias = default, int biasHeadStride = 0, int biasRowStride = 0,
                                  in TensorSpan<float> lse = default, CpuContext? context = null) where T : unmanaged
    {
        _ = ElementType.Of<T>(); // as in the span overload: an unsupported T before any other check
        ReadOnlySpan<T> qMemory = TokenHeads(q, nameof(q), out int qTokens, out int numHeads, out int headDim, out int qStride);
        ReadOnlySpan<T> kMemory = TokenHeads(k, nameof(k), out int kTokens, out int numKvHeads, out int kHeadDim, out int kStride);
        KvHeadsFitQueries(numKvHeads, kHeadDim, numHeads, headDim, nameof(k));
        SameShape(v, k, nameof(v), nameof(k));
        ReadOnlySpan<T> vMemory = TokenHeads(v, nameof(v), out _, out _, out _, out int vStride);
        Span<T> outputMemory = Output(output, q, out int outputStride);
        Span<float> lseMemory = Lse(lse, qTokens, numHeads);
        CoversOffsets(qTokens, cuSeqlensQ, nameof(q), nameof(cuSeqlensQ));
        CoversOffsets(kTokens, cuSeqlensK, nameof(k), nameof(cuSeqlensK));
        Forward(qMemory, kMemory, vMemory, outputMemory, cuSeqlensQ, cuSeqlensK, numHeads, numKvHeads, headDim, options, alibiSlopes,
                bias, biasHeadStride, biasRowStride, lseMemory, qStride, kStride, vStride, outputStride, context);
    }

    /// <summary>
    /// <see cref="ForwardPaged{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, PagedKvCacheLayout, ReadOnlySpan{int}, int, ReadOnlySpan{int}, Span{T}, ReadOnlySpan{int}, int, AttentionOptions?, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{float}, int, int, CpuContext?)"/>
    /// over tensors: the caches' shape is the <see cref="PagedKvCacheLayout"/>, and the number of heads, the head dimension and the
    /// token strides of <paramref name="q"/> and <paramref name="output"/> come from theirs.
    /// </summary>
    /// <param name="q">Queries, <c>[tokens, numHeads, headDim]</c>, as in <see cref="Forward{T}(in ReadOnlyTensorSpan{T}, in ReadOnlyTensorSpan{T}, in ReadOnlyTensorSpan{T}, in TensorSpan{T}, ReadOnlySpan{int}, ReadOnlySpan{int}, AttentionOptions?, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, in TensorSpan{float}, CpuContext?)"/>.</param>
    /// <param name="keyCache">The key cache, <c>[numBlocks, blockSize, numKvHeads, headDim]</c>, every dimension positive, dense
    /// (vLLM's flash layout); <c>numKvHeads</c> divides <c>numHeads</c> and the head dimension is <paramref name="q"/>'s.</param>
    /// <param name="valueCache">The value cache, the shape of <paramref name="keyCache"/>, dense; not overlapping it.</param>
    /// <param name="blockTables">Each sequence's block ids, <c>[sequences, maxBlocksPerSeq]</c>, as in the span overload.</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>; non-negative.</param>
    /// <param name="seqLensK">Keys in each sequence, <c>[sequences]</c>: in <c>[0, maxBlocksPerSeq * blockSize]</c>.</param>
    /// <param name="output">The result, the shape of <paramref name="q"/>, dense like it. Must not overlap any other argument.</param>
    /// <param name="cuSeqlensQ">Query offsets, <c>[sequences + 1]</c>: from 0, non-decreasing.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="alibiSlopes">ALiBi slopes, <c>[numHeads]</c>, or empty for none.</param>
    /// <param name="bias">An additive bias, or empty for none, as in the span overload.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>; non-negative.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>; positive when a bias is given.</param>
    /// <param name="lse">The log-sum-exp of each query head's scores, <c>[tokens, numHeads]</c>, dense; or <c>default</c> for none.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A rank, shape, stride, option, overlap, offset, key length or block id is wrong; nothing
    /// was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void ForwardPaged<T>(in ReadOnlyTensorSpan<T> q, in ReadOnlyTensorSpan<T> keyCache, in ReadOnlyTensorSpan<T> valueCache,
                                       ReadOnlySpan<int> blockTables, int maxBlocksPerSeq, ReadOnlySpan<int> seqLensK,
                                       in TensorSpan<T> output, ReadOnlySpan<int> cuSeqlensQ, AttentionOptions? options = null,
                                       ReadOnlySpan<float> alibiSlopes = default, ReadOnlySpan<float> bias = default,
                                       int biasHeadStride = 0, int biasRowStride = 0, in TensorSpan<float> lse = default,
                                       CpuContext? context = null) where T : unmanaged
    {
        _ = ElementType.Of<T>();
        ReadOnlySpan<T> qMemory = TokenHeads(q, nameof(q), out int qTokens, out int numHeads, out int headDim, out int qStride);
        Span<int> n = stackalloc int[4];
        TensorChecks.Lengths(keyCache, 4, "[numBlocks, blockSize, numKvHeads, headDim]", n, nameof(keyCache));
        if (n[0] <= 0 || n[1] <= 0 || n[2] <= 0 || n[3] <= 0)
            throw new ArgumentException($"Shape [{n[0]}, {n[1]}, {n[2]}, {n[3]}]: every dimension must be positive.", nameof(keyCache));
        TensorChecks.DenseFrom(keyCache, 0, nameof(keyCache));
        var layout = new PagedKvCacheLayout(NumBlocks: n[0], BlockSize: n[1], NumKvHeads: n[2], HeadDim: n[3]);
        KvHeadsFitQueries(layout.NumKvHeads, layout.HeadDim, numHeads, headDim, nameof(keyCache));
        SameShape(valueCache, keyCache, nameof(valueCache), nameof(keyCache));
        TensorChecks.DenseFrom(valueCache, 0, nameof(valueCache));
        ReadOnlySpan<T> keyCacheMemory = TensorChecks.Memory(keyCache, TensorChecks.Extent(keyCache, nameof(keyCache)));
        ReadOnlySpan<T> valueCacheMemory = TensorChecks.Memory(valueCache, TensorChecks.Extent(valueCache, nameof(valueCache)));
        Span<T> outputMemory = Output(output, q, out int outputStride);
        Span<float> lseMemory = Lse(lse, qTokens, numHeads);
        CoversOffsets(qTokens, cuSeqlensQ, nameof(q), nameof(cuSeqlensQ));
        ForwardPaged(qMemory, keyCacheMemory, valueCacheMemory, layout, blockTables, maxBlocksPerSeq, seqLensK, outputMemory, cuSeqlensQ,
                     numHeads, options, alibiSlopes, bias, biasHeadStride, biasRowStride, lseMemory, qStride, outputStride, context);
    }

    /// <summary>A <c>[tokens, heads, headDim]</c> tensor: positive heads, a head dimension the kernels take, heads and head
    /// dimension dense, and tokens at least a row apart. Returns the memory it addresses.</summary>
    private static ReadOnlySpan<T> TokenHeads<T>(in ReadOnlyTensorSpan<T> x, string name, out int tokens, out int heads, out int headDim,
                                                 out int tokenStride)
    {
        Span<int> n = stackalloc int[3];
        TensorChecks.Lengths(x, 3, "[tokens, heads, headDim]", n, name);
        (tokens, heads, headDim) = (n[0], n[1], n[2]);
        if (heads <= 0)
            throw new ArgumentException($"Shape [{tokens}, {heads}, {headDim}]: the heads must be positive.", name);
        if (headDim <= 0 || headDim > MaxHeadDim)
            throw new ArgumentException($"Shape [{tokens}, {heads}, {headDim}]: the head dimension must be in [1, {MaxHeadDim}].", name);
        TensorChecks.DenseFrom(x, 1, name);
        tokenStride = TensorChecks.TokenStride(x, (long)heads * headDim, name);
        return TensorChecks.Memory(x, TensorChecks.Extent(x, name));
    }

    private static Span<T> Output<T>(in TensorSpan<T> output, in ReadOnlyTensorSpan<T> q, out int outputStride)
    {
        ReadOnlyTensorSpan<T> view = output;
        SameShape(view, q, nameof(output), nameof(q));
        int extent = TokenHeads(view, nameof(output), out _, out _, out _, out outputStride).Length;
        return TensorChecks.Memory(output, extent);
    }

    /// <summary>None for a rank-0 (default) tensor; otherwise dense <c>[tokens, numHeads]</c>.</summary>
    private static Span<float> Lse(in TensorSpan<float> lse, int tokens, int numHeads)
    {
        if (lse.Rank == 0)
            return default;
        ReadOnlyTensorSpan<float> view = lse;
        Span<int> n = stackalloc int[2];
        TensorChecks.Lengths(view, 2, "[tokens, numHeads]", n, nameof(lse));
        if (n[0] != tokens || n[1] != numHeads)
            throw new ArgumentException($"Shape [{n[0]}, {n[1]}] differs from q's tokens and heads, [{tokens}, {numHeads}].", nameof(lse));
        TensorChecks.DenseFrom(view, 0, nameof(lse));
        return TensorChecks.Memory(lse, TensorChecks.Extent(view, nameof(lse)));
    }

    /// <summary>Keys of <paramref name="kvHeads"/> heads of <paramref name="kvHeadDim"/> serve q's heads: the same head dimension,
    /// and a head count dividing q's (GQA/MQA).</summary>
    private static void KvHeadsFitQueries(int kvHeads, int kvHeadDim, int numHeads, int headDim, string name)
    {
        if (kvHeadDim != headDim)
            throw new ArgumentException($"Head dimension {kvHeadDim} differs from q's ({headDim}).", name);
        if (numHeads % kvHeads != 0)
            throw new ArgumentException($"Its {kvHeads} heads do not divide q's {numHeads}.", name);
    }

    private static void SameShape<T>(in ReadOnlyTensorSpan<T> x, in ReadOnlyTensorSpan<T> expected, string name, string expectedName)
    {
        if (!x.Lengths.SequenceEqual(expected.Lengths))
            throw new ArgumentException($"Shape [{string.Join(", ", x.Lengths.ToArray())}] differs from {expectedName}'s " +
                                        $"[{string.Join(", ", expected.Lengths.ToArray())}].", name);
    }

    /// <summary>The tensor has a token for every offset; a bad last offset is the span overload's or the native library's to report.</summary>
    private static void CoversOffsets(int tokens, ReadOnlySpan<int> offsets, string name, string offsetsName)
    {
        if (!offsets.IsEmpty && offsets[^1] > tokens)
            throw new ArgumentException($"Holds {tokens} tokens, fewer than {offsetsName}[^1] ({offsets[^1]}).", name);
    }
}
