namespace LlmKernels;

// Attention on a CUDA device: the span overloads' parameters, defaults and checks over device views, plus FlashAttention's
// max_seqlen_q and max_seqlen_k, which size the grid on the host.
public static partial class Attention
{
    /// <summary>
    /// Attention over contiguous keys and values on a CUDA device (<c>lk_cuda_attention</c>): what
    /// <see cref="Forward{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, ReadOnlySpan{int}, int, int, int, AttentionOptions?, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{float}, int, int, int, int, CpuContext?)"/>
    /// computes (FlashAttention-2 on tensor cores for prefill, flash-decoding for decode). Queued on <paramref name="stream"/>.
    /// </summary>
    /// <remarks>
    /// The offsets are device memory: the kernel checks their order and each sequence against <paramref name="maxSeqlenQ"/> and
    /// <paramref name="maxSeqlenK"/> as it reads them, and the next <see cref="CudaStream.Synchronize"/> reports the first bad one
    /// (naming <c>cuSeqlensQ</c> or <c>cuSeqlensK</c>). Their totals are not checked against the lengths of <paramref name="q"/>,
    /// <paramref name="k"/>, <paramref name="v"/>, <paramref name="output"/>, <paramref name="lse"/> or <paramref name="bias"/>, which the
    /// span overload does on the host: the C ABI carries no capacity for the kernel to check them against (docs/cuda/managed.md).
    /// </remarks>
    /// <param name="q">Queries, <c>[totalQ, qStride]</c>, a token's <paramref name="numHeads"/> heads of <paramref name="headDim"/> first.</param>
    /// <param name="k">Keys, <c>[totalK, kStride]</c>, a token's <paramref name="numKvHeads"/> heads first.</param>
    /// <param name="v">Values, <c>[totalK, vStride]</c>, laid out like <paramref name="k"/>; may be the same memory as <paramref name="k"/> or <paramref name="q"/>.</param>
    /// <param name="output">The result, <c>[totalQ, outputStride]</c>. Must not overlap any other argument.</param>
    /// <param name="cuSeqlensQ">Query offsets, <c>[sequences + 1]</c>: from 0, non-decreasing.</param>
    /// <param name="cuSeqlensK">Key offsets, as long as <paramref name="cuSeqlensQ"/>.</param>
    /// <param name="numHeads">Query heads per token; positive.</param>
    /// <param name="numKvHeads">Key/value heads per token; positive and dividing <paramref name="numHeads"/>.</param>
    /// <param name="headDim">Elements per head: 1 to <see cref="MaxHeadDim"/>.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="alibiSlopes">ALiBi slopes, <c>[numHeads]</c>, or empty for none.</param>
    /// <param name="bias">An additive bias, or empty for none, as in the span overload.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>; non-negative.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>; positive when a bias is given.</param>
    /// <param name="lse">The log-sum-exp of each query head's scores, <c>[totalQ, numHeads]</c>, or empty for none.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="kStride">Elements between tokens of <paramref name="k"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="vStride">Elements between tokens of <paramref name="v"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="outputStride">Elements between tokens of <paramref name="output"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="maxSeqlenQ">At least every sequence's query count (1 for decode), or 0 (the default) to have the library read the
    /// offsets back, a synchronising copy.</param>
    /// <param name="maxSeqlenK">At least every sequence's key count, or 0 likewise.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A shape, stride, option or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Forward<T>(DeviceSpan<T> q, DeviceSpan<T> k, DeviceSpan<T> v, DeviceSpan<T> output, DeviceSpan<int> cuSeqlensQ,
                                  DeviceSpan<int> cuSeqlensK, int numHeads, int numKvHeads, int headDim, AttentionOptions? options = null,
                                  DeviceSpan<float> alibiSlopes = default, DeviceSpan<float> bias = default, int biasHeadStride = 0,
                                  int biasRowStride = 0, DeviceSpan<float> lse = default, int qStride = 0, int kStride = 0,
                                  int vStride = 0, int outputStride = 0, int maxSeqlenQ = 0, int maxSeqlenK = 0,
                                  CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        CheckHeads(numHeads, numKvHeads, headDim, nameof(numKvHeads), nameof(headDim), inLayout: false);
        options ??= s_defaultOptions;
        CheckOptions(options);
        long numSeqs = CheckDeviceOffsets(cuSeqlensQ.Length);
        if (cuSeqlensK.Length != cuSeqlensQ.Length)
            throw new ArgumentException($"Length {cuSeqlensK.Length} differs from cuSeqlensQ.Length ({cuSeqlensQ.Length}).", nameof(cuSeqlensK));
        long qRow = (long)numHeads * headDim, kvRow = (long)numKvHeads * headDim;
        long qStep = SpanChecks.TokenStride(qStride, qRow, nameof(qStride), "numHeads x headDim");
        long outStep = SpanChecks.TokenStride(outputStride, qRow, nameof(outputStride), "numHeads x headDim");
        long kStep = SpanChecks.TokenStride(kStride, kvRow, nameof(kStride), "numKvHeads x headDim");
        long vStep = SpanChecks.TokenStride(vStride, kvRow, nameof(vStride), "numKvHeads x headDim");
        CheckDeviceExtras(numHeads, alibiSlopes.Length, !bias.IsEmpty, biasHeadStride, biasRowStride, maxSeqlenQ, maxSeqlenK);

        using var call = new DeviceCall(stream);
        DeviceRange qr = call.Range(q, nameof(q)), kr = call.Range(k, nameof(k)), vr = call.Range(v, nameof(v));
        DeviceRange or = call.Range(output, nameof(output)), lr = call.Range(lse, nameof(lse));
        DeviceRange ar = call.Range(alibiSlopes, nameof(alibiSlopes)), br = call.Range(bias, nameof(bias));
        DeviceRange cq = call.Range(cuSeqlensQ, nameof(cuSeqlensQ)), ck = call.Range(cuSeqlensK, nameof(cuSeqlensK));
        CheckDeviceWritesAlone(or, lr, qr, ar, br, cq, ck, nameof(cuSeqlensK));
        DeviceChecks.NoOverlap(or, kr, nameof(output), nameof(k));
        DeviceChecks.NoOverlap(or, vr, nameof(output), nameof(v));
        DeviceChecks.NoOverlap(lr, kr, nameof(lse), nameof(k));
        DeviceChecks.NoOverlap(lr, vr, nameof(lse), nameof(v));
        if (numSeqs == 0)
            return;
        CudaKernels.AttentionForward(qr.Address, kr.Address, vr.Address, or.Address, cq.Address, ck.Address, numSeqs, numHeads, numKvHeads,
                                     headDim, dataType, options, maxSeqlenQ, maxSeqlenK, ar.Address, br.Address, biasHeadStride,
                                     biasRowStride, lr.Address, qStep, kStep, vStep, outStep, call.Stream);
    }

    /// <summary>
    /// Attention over a paged KV cache on a CUDA device (<c>lk_cuda_attention</c>): what
    /// <see cref="ForwardPaged{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, PagedKvCacheLayout, ReadOnlySpan{int}, int, ReadOnlySpan{int}, Span{T}, ReadOnlySpan{int}, int, AttentionOptions?, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{float}, int, int, CpuContext?)"/>
    /// computes. Block ids, key counts and query offsets are device memory, checked by the kernel (see
    /// <see cref="Forward{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{int}, DeviceSpan{int}, int, int, int, AttentionOptions?, DeviceSpan{float}, DeviceSpan{float}, int, int, DeviceSpan{float}, int, int, int, int, int, int, CudaStream?)"/>'s remarks).
    /// </summary>
    /// <param name="q">Queries, <c>[totalQ, qStride]</c>, a token's <paramref name="numHeads"/> heads of <c>layout.HeadDim</c> first.</param>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements; not overlapping <paramref name="keyCache"/>.</param>
    /// <param name="layout">The shape of both caches: every dimension positive, <see cref="PagedKvCacheLayout.HeadDim"/> at most
    /// <see cref="MaxHeadDim"/>; its <see cref="PagedKvCacheLayout.NumKvHeads"/> divides <paramref name="numHeads"/>.</param>
    /// <param name="blockTables">Each sequence's block ids, <c>[sequences, maxBlocksPerSeq]</c>: at least that many elements.</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>; non-negative.</param>
    /// <param name="seqLensK">Keys in each sequence, <c>[sequences]</c>.</param>
    /// <param name="output">The result, <c>[totalQ, outputStride]</c>. Must not overlap any other argument.</param>
    /// <param name="cuSeqlensQ">Query offsets, <c>[sequences + 1]</c>: from 0, non-decreasing.</param>
    /// <param name="numHeads">Query heads per token; positive, a multiple of <c>layout.NumKvHeads</c>.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="alibiSlopes">ALiBi slopes, <c>[numHeads]</c>, or empty for none.</param>
    /// <param name="bias">An additive bias, or empty for none.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>; non-negative.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>; positive when a bias is given.</param>
    /// <param name="lse">The log-sum-exp of each query head's scores, <c>[totalQ, numHeads]</c>, or empty for none.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * layout.HeadDim</c>.</param>
    /// <param name="outputStride">Elements between tokens of <paramref name="output"/>; 0 means <c>numHeads * layout.HeadDim</c>.</param>
    /// <param name="maxSeqlenQ">At least every sequence's query count (1 for decode), or 0 to have the library read the offsets back.</param>
    /// <param name="maxSeqlenK">At least every sequence's key count, or 0 likewise.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A shape, stride, option or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void ForwardPaged<T>(DeviceSpan<T> q, DeviceSpan<T> keyCache, DeviceSpan<T> valueCache, PagedKvCacheLayout layout,
                                       DeviceSpan<int> blockTables, int maxBlocksPerSeq, DeviceSpan<int> seqLensK, DeviceSpan<T> output,
                                       DeviceSpan<int> cuSeqlensQ, int numHeads, AttentionOptions? options = null,
                                       DeviceSpan<float> alibiSlopes = default, DeviceSpan<float> bias = default, int biasHeadStride = 0,
                                       int biasRowStride = 0, DeviceSpan<float> lse = default, int qStride = 0, int outputStride = 0,
                                       int maxSeqlenQ = 0, int maxSeqlenK = 0, CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        layout.CheckDeviceCaches(keyCache.Length, valueCache.Length);
        int headDim = layout.HeadDim;
        CheckHeads(numHeads, layout.NumKvHeads, headDim, nameof(layout), nameof(layout), inLayout: true);
        options ??= s_defaultOptions;
        CheckOptions(options);
        long numSeqs = CheckDeviceOffsets(cuSeqlensQ.Length);
        if (seqLensK.Length != numSeqs)
            throw new ArgumentException($"Length {seqLensK.Length} differs from the {numSeqs} sequences of cuSeqlensQ (its length - 1).",
                                        nameof(seqLensK));
        KvCache.CheckDeviceBlockTables(blockTables.Length, maxBlocksPerSeq, numSeqs);
        long qRow = (long)numHeads * headDim;
        long qStep = SpanChecks.TokenStride(qStride, qRow, nameof(qStride), "numHeads x headDim");
        long outStep = SpanChecks.TokenStride(outputStride, qRow, nameof(outputStride), "numHeads x headDim");
        CheckDeviceExtras(numHeads, alibiSlopes.Length, !bias.IsEmpty, biasHeadStride, biasRowStride, maxSeqlenQ, maxSeqlenK);

        using var call = new DeviceCall(stream);
        DeviceRange qr = call.Range(q, nameof(q)), or = call.Range(output, nameof(output)), lr = call.Range(lse, nameof(lse));
        DeviceRange kc = call.Range(keyCache, nameof(keyCache)), vc = call.Range(valueCache, nameof(valueCache));
        DeviceRange tr = call.Range(blockTables, nameof(blockTables)), sk = call.Range(seqLensK, nameof(seqLensK));
        DeviceRange ar = call.Range(alibiSlopes, nameof(alibiSlopes)), br = call.Range(bias, nameof(bias));
        DeviceRange cq = call.Range(cuSeqlensQ, nameof(cuSeqlensQ));
        DeviceChecks.NoOverlap(vc, kc, nameof(valueCache), nameof(keyCache));
        CheckDeviceWritesAlone(or, lr, qr, ar, br, cq, sk, nameof(seqLensK));
        DeviceChecks.NoOverlap(or, kc, nameof(output), nameof(keyCache));
        DeviceChecks.NoOverlap(or, vc, nameof(output), nameof(valueCache));
        DeviceChecks.NoOverlap(or, tr, nameof(output), nameof(blockTables));
        DeviceChecks.NoOverlap(lr, kc, nameof(lse), nameof(keyCache));
        DeviceChecks.NoOverlap(lr, vc, nameof(lse), nameof(valueCache));
        DeviceChecks.NoOverlap(lr, tr, nameof(lse), nameof(blockTables));
        if (numSeqs == 0)
            return;
        CudaKernels.AttentionForwardPaged(qr.Address, kc.Address, vc.Address, layout, tr.Address, maxBlocksPerSeq, sk.Address, or.Address,
                                          cq.Address, numSeqs, numHeads, dataType, options, maxSeqlenQ, maxSeqlenK, ar.Address, br.Address,
                                          biasHeadStride, biasRowStride, lr.Address, qStep, outStep, call.Stream);
    }

    /// <summary>Sequences of a <c>cuSeqlensQ</c> of <paramref name="length"/> elements, which must hold at least the 0 of an empty batch.</summary>
    private static long CheckDeviceOffsets(long length)
    {
        if (length == 0)
            throw new ArgumentException("Empty: the offsets of n sequences are n + 1 elements, from 0.", "cuSeqlensQ");
        return length - 1;
    }

    /// <summary>CheckExtras' checks that need no host lengths or offsets, and the grid bounds.</summary>
    private static void CheckDeviceExtras(int numHeads, long alibiLength, bool hasBias, int biasHeadStride, int biasRowStride, int maxSeqlenQ,
                                          int maxSeqlenK)
    {
        if (alibiLength != 0 && alibiLength != numHeads)
            throw new ArgumentException($"Length {alibiLength} differs from numHeads ({numHeads}).", "alibiSlopes");
        if (hasBias && biasRowStride <= 0)
            throw new ArgumentOutOfRangeException(nameof(biasRowStride), biasRowStride, "Must be positive when a bias is given.");
        if (hasBias && biasHeadStride < 0)
            throw new ArgumentOutOfRangeException(nameof(biasHeadStride), biasHeadStride, "Must be non-negative.");
        if (maxSeqlenQ < 0)
            throw new ArgumentOutOfRangeException(nameof(maxSeqlenQ), maxSeqlenQ, "Must be 0 (read the offsets back) or at least every sequence's queries.");
        if (maxSeqlenK < 0)
            throw new ArgumentOutOfRangeException(nameof(maxSeqlenK), maxSeqlenK, "Must be 0 (read the offsets back) or at least every sequence's keys.");
    }

    /// <summary>CheckWritesAlone over device ranges.</summary>
    private static void CheckDeviceWritesAlone(DeviceRange output, DeviceRange lse, DeviceRange q, DeviceRange alibiSlopes, DeviceRange bias,
                                               DeviceRange cuSeqlensQ, DeviceRange keyLengths, string keyLengthsName)
    {
        DeviceChecks.NoOverlap(output, q, nameof(output), nameof(q));
        DeviceChecks.NoOverlap(output, lse, nameof(output), nameof(lse));
        DeviceChecks.NoOverlap(output, alibiSlopes, nameof(output), nameof(alibiSlopes));
        DeviceChecks.NoOverlap(output, bias, nameof(output), nameof(bias));
        DeviceChecks.NoOverlap(output, cuSeqlensQ, nameof(output), nameof(cuSeqlensQ));
        DeviceChecks.NoOverlap(output, keyLengths, nameof(output), keyLengthsName);
        DeviceChecks.NoOverlap(lse, q, nameof(lse), nameof(q));
        DeviceChecks.NoOverlap(lse, alibiSlopes, nameof(lse), nameof(alibiSlopes));
        DeviceChecks.NoOverlap(lse, bias, nameof(lse), nameof(bias));
        DeviceChecks.NoOverlap(lse, cuSeqlensQ, nameof(lse), nameof(cuSeqlensQ));
        DeviceChecks.NoOverlap(lse, keyLengths, nameof(lse), keyLengthsName);
    }
}
