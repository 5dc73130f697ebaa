using LlmKernels.Interop;

namespace LlmKernels;

public static unsafe partial class CudaKernels
{
    /// <summary>
    /// MoE gating on the device (<c>lk_cuda_moe_gating</c>): router logits to each token's top-k experts and f32 weights, as
    /// <see cref="Moe.Gating{T}(DeviceSpan{T}, DeviceSpan{float}, DeviceSpan{int}, int, int, int, MoeGatingOptions?, DeviceSpan{float}, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="logits">Device pointer: <c>[numTokens, logitsStride]</c> of <paramref name="dataType"/>.</param>
    /// <param name="weights">Device pointer: f32 <c>[numTokens, topK]</c>.</param>
    /// <param name="expertIds">Device pointer: int32 <c>[numTokens, topK]</c>.</param>
    /// <param name="numTokens">Tokens; non-negative.</param>
    /// <param name="numExperts">Experts; positive.</param>
    /// <param name="topK">Experts per token: 1 to <c>min(</c><see cref="Moe.MaxTopK"/><c>, numExperts)</c>.</param>
    /// <param name="dataType">The logits' type: Float32, Float16 or BFloat16.</param>
    /// <param name="options">Scoring, groups, renormalisation and scaling; null means <see cref="MoeGatingOptions"/>' defaults.</param>
    /// <param name="correctionBias">Device pointer: f32 <c>[numExperts]</c> selection bias, or 0.</param>
    /// <param name="logitsStride">Elements between tokens of <paramref name="logits"/>; 0 means <paramref name="numExperts"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void MoeGating(nint logits, nint weights, nint expertIds, long numTokens, long numExperts, long topK, TensorDataType dataType,
                                 MoeGatingOptions? options = null, nint correctionBias = 0, long logitsStride = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        options ??= Moe.s_defaultOptions;
        if (options.Scoring is not (MoeScoring.SoftmaxTopK or MoeScoring.TopKSoftmax or MoeScoring.Sigmoid))
            throw new ArgumentOutOfRangeException(nameof(options), options.Scoring, "Scoring is not a MoeScoring.");
        bool grouped = options.NumGroups > 1;
        var p = new MoeGatingParams
        {
            Logits = (void*)logits,
            Weights = (float*)weights,
            ExpertIds = (int*)expertIds,
            CorrectionBias = (float*)correctionBias,
            NumTokens = numTokens,
            NumExperts = numExperts,
            TopK = topK,
            LogitsStride = logitsStride,
            NumGroups = grouped ? options.NumGroups : 0,
            TopkGroups = grouped ? options.TopKGroups : 0,
            RoutedScalingFactor = options.RoutedScalingFactor,
            Scoring = (Interop.MoeScoring)options.Scoring,
            Flags = options.Renormalize ? (uint)MoeFlags.MoeRenormalize : 0u,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaMoeGating(stream, &p), "lk_cuda_moe_gating");
    }

    /// <summary>
    /// The MoE routing plan on the device (<c>lk_cuda_moe_routing</c>, vLLM's <c>moe_align_block_size</c>), as
    /// <see cref="Moe.Routing(DeviceSpan{int}, int, int, int, DeviceSpan{int}, DeviceSpan{int}, DeviceSpan{int}, DeviceSpan{int}, DeviceSpan{int}, int, int, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="expertIds">Device pointer: int32 <c>[numTokens, topK]</c>.</param>
    /// <param name="numTokens">Tokens; non-negative.</param>
    /// <param name="topK">Experts per token; positive.</param>
    /// <param name="numExperts">Experts; positive.</param>
    /// <param name="expertCounts">Device pointer: int32 <c>[local]</c>, written.</param>
    /// <param name="expertOffsets">Device pointer: int32 <c>[local + 1]</c>, written.</param>
    /// <param name="sortedSlots">Device pointer: int32 <c>[sortedCapacity]</c>, written.</param>
    /// <param name="sortedCapacity">Elements of <paramref name="sortedSlots"/>: at least <see cref="Moe.RoutingCapacity"/>.</param>
    /// <param name="slotRows">Device pointer: int32 <c>[numTokens, topK]</c>, written; or 0.</param>
    /// <param name="blockExperts">Device pointer: int32 <c>[sortedCapacity / blockSize]</c>, written when <paramref name="blockSize"/> &gt; 1; or 0.</param>
    /// <param name="blockSize">0 or 1 for no padding, otherwise the multiple each expert's segment is padded to.</param>
    /// <param name="expertBegin">The first local expert.</param>
    /// <param name="expertEnd">One past the last local expert; 0 with <paramref name="expertBegin"/> 0 means all.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void MoeRouting(nint expertIds, long numTokens, long topK, long numExperts, nint expertCounts, nint expertOffsets,
                                  nint sortedSlots, long sortedCapacity, nint slotRows = 0, nint blockExperts = 0, long blockSize = 0,
                                  long expertBegin = 0, long expertEnd = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new MoeRoutingParams
        {
            ExpertIds = (int*)expertIds,
            NumTokens = numTokens,
            TopK = topK,
            NumExperts = numExperts,
            ExpertBegin = expertBegin,
            ExpertEnd = expertEnd,
            BlockSize = blockSize,
            ExpertCounts = (int*)expertCounts,
            ExpertOffsets = (int*)expertOffsets,
            SortedSlots = (int*)sortedSlots,
            SortedCapacity = sortedCapacity,
            SlotRows = (int*)slotRows,
            BlockExperts = (int*)blockExperts,
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaMoeRouting(stream, &p), "lk_cuda_moe_routing");
    }

    /// <summary>
    /// Token rows into expert order on the device (<c>lk_cuda_moe_permute</c>), as
    /// <see cref="Moe.Permute{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{int}, int, int, int, int, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="input">Device pointer: <c>[numTokens, inputStride]</c>.</param>
    /// <param name="output">Device pointer: <c>[numRows, outputStride]</c>.</param>
    /// <param name="sortedSlots">Device pointer: int32 <c>[numRows]</c>, each -1 or in <c>[0, numTokens * topK)</c>.</param>
    /// <param name="numRows">Rows of <paramref name="output"/> (and of <paramref name="sortedSlots"/>).</param>
    /// <param name="numTokens">Tokens; non-negative.</param>
    /// <param name="topK">Experts per token; positive.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="inputStride">Elements between rows of <paramref name="input"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="outputStride">Elements between rows of <paramref name="output"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void MoePermute(nint input, nint output, nint sortedSlots, long numRows, long numTokens, long topK, long hidden,
                                  TensorDataType dataType, long inputStride = 0, long outputStride = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new MoePermuteParams
        {
            Input = (void*)input,
            Output = (void*)output,
            SortedSlots = (int*)sortedSlots,
            NumTokens = numTokens,
            TopK = topK,
            NumRows = numRows,
            Hidden = hidden,
            InputStride = inputStride,
            OutputStride = outputStride,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaMoePermute(stream, &p), "lk_cuda_moe_permute");
    }

    /// <summary>
    /// The experts' rows summed back per token on the device (<c>lk_cuda_moe_combine</c>), as
    /// <see cref="Moe.Combine{T}(DeviceSpan{T}, DeviceSpan{float}, DeviceSpan{int}, DeviceSpan{T}, int, int, int, int, int, CudaStream?)"/>.
    /// </summary>
    /// <param name="expertOutput">Device pointer: <c>[numRows, expertStride]</c> in expert order.</param>
    /// <param name="weights">Device pointer: f32 <c>[numTokens, topK]</c>.</param>
    /// <param name="slotRows">Device pointer: int32 <c>[numTokens, topK]</c>, each -1 or in <c>[0, numRows)</c>.</param>
    /// <param name="output">Device pointer: <c>[numTokens, outputStride]</c>.</param>
    /// <param name="numRows">Rows of <paramref name="expertOutput"/>.</param>
    /// <param name="numTokens">Tokens; non-negative.</param>
    /// <param name="topK">Experts per token: 1 to <see cref="Moe.MaxTopK"/>.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="expertStride">Elements between rows of <paramref name="expertOutput"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="outputStride">Elements between rows of <paramref name="output"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void MoeCombine(nint expertOutput, nint weights, nint slotRows, nint output, long numRows, long numTokens, long topK,
                                  long hidden, TensorDataType dataType, long expertStride = 0, long outputStride = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new MoeCombineParams
        {
            ExpertOutput = (void*)expertOutput,
            Weights = (float*)weights,
            SlotRows = (int*)slotRows,
            Output = (void*)output,
            NumTokens = numTokens,
            TopK = topK,
            NumRows = numRows,
            Hidden = hidden,
            ExpertStride = expertStride,
            OutputStride = outputStride,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaMoeCombine(stream, &p), "lk_cuda_moe_combine");
    }
}
