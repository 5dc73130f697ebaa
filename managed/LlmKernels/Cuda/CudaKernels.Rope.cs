using LlmKernels.Interop;

namespace LlmKernels;

public static unsafe partial class CudaKernels
{
    /// <summary>
    /// Rotary position embedding in place on the device (<c>lk_cuda_rope</c>), as
    /// <see cref="Kernels.Rope{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{int}, DeviceSpan{float}, int, int, int, int, RopeStyle, int, int, CudaStream?)"/>.
    /// Positions outside the cache are found by the kernel, which leaves their token as it is and reports the first at the next
    /// <see cref="CudaStream.Synchronize"/>.
    /// </summary>
    /// <param name="q">Device pointer: <c>[tokens, qStride]</c>, a token's <paramref name="numHeads"/> heads of <paramref name="headDim"/> first.</param>
    /// <param name="k">Device pointer: <c>[tokens, kStride]</c>, a token's <paramref name="numKvHeads"/> heads first; 0 for queries only.</param>
    /// <param name="positions">Device pointer: <c>[tokens]</c> of <paramref name="positionType"/>, each in <c>[0, maxPosition)</c>.</param>
    /// <param name="positionType">Int32 or Int64.</param>
    /// <param name="cosSinCache">Device pointer: the f32 cache <c>[maxPosition, rotaryDim]</c> (<see cref="RopeCache.CosSin"/>'s layout).</param>
    /// <param name="rotaryDim">Rotated elements per head: positive, even, at most <paramref name="headDim"/>.</param>
    /// <param name="maxPosition">Rows of the cache.</param>
    /// <param name="tokens">Tokens; non-negative.</param>
    /// <param name="numHeads">Query heads per token.</param>
    /// <param name="numKvHeads">Key heads per token, dividing <paramref name="numHeads"/>; ignored when <paramref name="k"/> is 0.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="dataType">The type of <paramref name="q"/> and <paramref name="k"/>: Float32, Float16 or BFloat16.</param>
    /// <param name="style">How elements pair up.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="kStride">Elements between tokens of <paramref name="k"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void Rope(nint q, nint k, nint positions, TensorDataType positionType, nint cosSinCache, long rotaryDim, long maxPosition,
                            long tokens, long numHeads, long numKvHeads, long headDim, TensorDataType dataType,
                            RopeStyle style = RopeStyle.NeoX, long qStride = 0, long kStride = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        if (style is not (RopeStyle.NeoX or RopeStyle.GptJ))
            throw new ArgumentOutOfRangeException(nameof(style), style, "Not a RopeStyle.");
        var p = new RopeParams
        {
            Q = (void*)q,
            K = (void*)k,
            Positions = (void*)positions,
            CosSinCache = (float*)cosSinCache,
            Tokens = tokens,
            NumHeads = numHeads,
            NumKvHeads = k == 0 ? 0 : numKvHeads,
            HeadDim = headDim,
            RotDim = rotaryDim,
            MaxPosition = maxPosition,
            QStride = qStride,
            KStride = k == 0 ? 0 : kStride,
            Style = (Interop.RopeStyle)style,
            PositionType = TensorDataTypes.Index(positionType, nameof(positionType)),
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaRope(stream, &p), "lk_cuda_rope");
    }
}
