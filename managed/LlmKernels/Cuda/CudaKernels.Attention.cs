using LlmKernels.Interop;

namespace LlmKernels;

public static unsafe partial class CudaKernels
{
    /// <summary>
    /// Attention over contiguous keys and values on the device (<c>lk_cuda_attention</c>: a tensor-core FlashAttention-2 kernel for
    /// prefill, flash-decoding for decode, chosen by <paramref name="maxSeqlenQ"/>), as
    /// <see cref="Attention.Forward{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{int}, DeviceSpan{int}, int, int, int, AttentionOptions?, DeviceSpan{float}, DeviceSpan{float}, int, int, DeviceSpan{float}, int, int, int, int, int, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="q">Device pointer: queries <c>[totalQ, qStride]</c>.</param>
    /// <param name="k">Device pointer: keys <c>[totalK, kStride]</c>.</param>
    /// <param name="v">Device pointer: values <c>[totalK, vStride]</c>.</param>
    /// <param name="output">Device pointer: the result <c>[totalQ, outputStride]</c>.</param>
    /// <param name="cuSeqlensQ">Device pointer: int32 query offsets <c>[numSeqs + 1]</c>.</param>
    /// <param name="cuSeqlensK">Device pointer: int32 key offsets <c>[numSeqs + 1]</c>.</param>
    /// <param name="numSeqs">Sequences; non-negative.</param>
    /// <param name="numHeads">Query heads per token.</param>
    /// <param name="numKvHeads">Key/value heads per token, dividing <paramref name="numHeads"/>.</param>
    /// <param name="headDim">Elements per head: 1 to <see cref="Attention.MaxHeadDim"/>.</param>
    /// <param name="dataType">The type of q, k, v and the output: Float32, Float16 or BFloat16.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="maxSeqlenQ">At least every sequence's query count (FlashAttention's <c>max_seqlen_q</c>), or 0 to have the library read
    /// the offsets back (a synchronising copy).</param>
    /// <param name="maxSeqlenK">At least every sequence's key count, or 0 likewise.</param>
    /// <param name="alibiSlopes">Device pointer: f32 <c>[numHeads]</c>, or 0.</param>
    /// <param name="bias">Device pointer: an additive f32 bias, or 0.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>.</param>
    /// <param name="lse">Device pointer: f32 <c>[totalQ, numHeads]</c> log-sum-exp, or 0.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="kStride">Elements between tokens of <paramref name="k"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="vStride">Elements between tokens of <paramref name="v"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="outputStride">Elements between tokens of <paramref name="output"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void AttentionForward(nint q, nint k, nint v, nint output, nint cuSeqlensQ, nint cuSeqlensK, long numSeqs, long numHeads,
                                        long numKvHeads, long headDim, TensorDataType dataType, AttentionOptions? options = null,
                                        long maxSeqlenQ = 0, long maxSeqlenK = 0, nint alibiSlopes = 0, nint bias = 0,
                                        long biasHeadStride = 0, long biasRowStride = 0, nint lse = 0, long qStride = 0, long kStride = 0,
                                        long vStride = 0, long outputStride = 0, nint stream = 0)
    {
        var p = new AttentionParams
        {
            K = (void*)k,
            V = (void*)v,
            CuSeqlensK = (int*)cuSeqlensK,
            NumKvHeads = numKvHeads,
            HeadDim = headDim,
            KStride = kStride,
            VStride = vStride,
        };
        AttentionCore(ref p, q, output, cuSeqlensQ, numSeqs, numHeads, dataType, options, maxSeqlenQ, maxSeqlenK, alibiSlopes, bias,
                      biasHeadStride, biasRowStride, lse, qStride, outputStride, stream);
    }

    /// <summary>
    /// Attention over a paged KV cache on the device (<c>lk_cuda_attention</c>), as
    /// <see cref="Attention.ForwardPaged{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, PagedKvCacheLayout, DeviceSpan{int}, int, DeviceSpan{int}, DeviceSpan{T}, DeviceSpan{int}, int, AttentionOptions?, DeviceSpan{float}, DeviceSpan{float}, int, int, DeviceSpan{float}, int, int, int, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="q">Device pointer: queries <c>[totalQ, qStride]</c>.</param>
    /// <param name="keyCache">Device pointer: the key cache.</param>
    /// <param name="valueCache">Device pointer: the value cache.</param>
    /// <param name="layout">The caches' shape; its head dimension is the queries'.</param>
    /// <param name="blockTables">Device pointer: int32 <c>[numSeqs, maxBlocksPerSeq]</c>.</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>.</param>
    /// <param name="seqLensK">Device pointer: int32 <c>[numSeqs]</c> key counts.</param>
    /// <param name="output">Device pointer: the result <c>[totalQ, outputStride]</c>.</param>
    /// <param name="cuSeqlensQ">Device pointer: int32 query offsets <c>[numSeqs + 1]</c>.</param>
    /// <param name="numSeqs">Sequences; non-negative.</param>
    /// <param name="numHeads">Query heads per token, a multiple of <c>layout.NumKvHeads</c>.</param>
    /// <param name="dataType">The type of q, the caches and the output.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="maxSeqlenQ">At least every sequence's query count, or 0 to have the library read the offsets back.</param>
    /// <param name="maxSeqlenK">At least every sequence's key count, or 0 likewise.</param>
    /// <param name="alibiSlopes">Device pointer: f32 <c>[numHeads]</c>, or 0.</param>
    /// <param name="bias">Device pointer: an additive f32 bias, or 0.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>.</param>
    /// <param name="lse">Device pointer: f32 <c>[totalQ, numHeads]</c> log-sum-exp, or 0.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * layout.HeadDim</c>.</param>
    /// <param name="outputStride">Elements between tokens of <paramref name="output"/>; 0 means <c>numHeads * layout.HeadDim</c>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void AttentionForwardPaged(nint q, nint keyCache, nint valueCache, PagedKvCacheLayout layout, nint blockTables,
                                             long maxBlocksPerSeq, nint seqLensK, nint output, nint cuSeqlensQ, long numSeqs, long numHeads,
                                             TensorDataType dataType, AttentionOptions? options = null, long maxSeqlenQ = 0,
                                             long maxSeqlenK = 0, nint alibiSlopes = 0, nint bias = 0, long biasHeadStride = 0,
                                             long biasRowStride = 0, nint lse = 0, long qStride = 0, long outputStride = 0, nint stream = 0)
    {
        var p = new AttentionParams
        {
            SeqlensK = (int*)seqLensK,
            Cache = Cache(keyCache, valueCache, layout, dataType),
            BlockTables = (int*)blockTables,
            MaxBlocksPerSeq = maxBlocksPerSeq,
            NumKvHeads = layout.NumKvHeads,
            HeadDim = layout.HeadDim,
        };
        AttentionCore(ref p, q, output, cuSeqlensQ, numSeqs, numHeads, dataType, options, maxSeqlenQ, maxSeqlenK, alibiSlopes, bias,
                      biasHeadStride, biasRowStride, lse, qStride, outputStride, stream);
    }

    private static void AttentionCore(ref AttentionParams p, nint q, nint output, nint cuSeqlensQ, long numSeqs, long numHeads,
                                      TensorDataType dataType, AttentionOptions? options, long maxSeqlenQ, long maxSeqlenK,
                                      nint alibiSlopes, nint bias, long biasHeadStride, long biasRowStride, nint lse, long qStride,
                                      long outputStride, nint stream)
    {
        CudaDevice.ThrowIfUnavailable();
        options ??= Attention.s_defaultOptions;
        Attention.CheckOptions(options);
        p.Q = (void*)q;
        p.Out = (void*)output;
        p.Lse = (float*)lse;
        p.CuSeqlensQ = (int*)cuSeqlensQ;
        p.NumSeqs = numSeqs;
        p.MaxSeqlenQ = maxSeqlenQ;
        p.MaxSeqlenK = maxSeqlenK;
        p.NumHeads = numHeads;
        p.QStride = qStride;
        p.OutStride = outputStride;
        p.AlibiSlopes = (float*)alibiSlopes;
        p.Bias = (float*)bias;
        p.BiasHeadStride = bias == 0 ? 0 : biasHeadStride;
        p.BiasRowStride = bias == 0 ? 0 : biasRowStride;
        p.Dtype = TensorDataTypes.Float(dataType, nameof(dataType));
        Attention.SetOptions(ref p, options);
        Status status;
        fixed (AttentionParams* pp = &p)
            status = NativeMethods.CudaAttention(stream, pp);
        NativeStatus.ThrowIfFailed(status, "lk_cuda_attention");
    }
}
