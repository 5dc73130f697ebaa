using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>The normalisation of <see cref="CudaKernels.Norm"/>.</summary>
public enum NormType
{
    /// <summary>RMSNorm: <c>v / sqrt(mean(v²) + epsilon) * weight</c>.</summary>
    RmsNorm = 0,
    /// <summary>LayerNorm: <c>(v - mean) / sqrt(var + epsilon) * weight + bias</c>.</summary>
    LayerNorm = 1,
}

/// <summary>Where <see cref="CudaKernels.Norm"/> adds the residual (docs/norms.md).</summary>
public enum ResidualPlacement
{
    /// <summary>No residual: <c>v = x</c>.</summary>
    None = 0,
    /// <summary>Pre-norm: <c>residual = residual + x</c>, stored; <c>v = residual</c> (vLLM's fused add).</summary>
    PreNorm = 1,
    /// <summary>Post-norm and DeepNorm: <c>v = alpha * residual + x</c>; the residual is only read.</summary>
    PostNorm = 2,
}

public static unsafe partial class CudaKernels
{
    /// <summary>
    /// RMSNorm (<c>lk_cuda_rms_norm</c>) over <paramref name="rows"/> rows of <paramref name="hidden"/> elements, as
    /// <see cref="Kernels.RmsNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>.
    /// </summary>
    /// <param name="x">Device pointer: <c>[rows, xStride]</c> of <paramref name="dataType"/>.</param>
    /// <param name="weight">Device pointer: <c>[hidden]</c> of <paramref name="weightType"/>.</param>
    /// <param name="destination">Device pointer: <c>[rows, destinationStride]</c>; may be <paramref name="x"/> itself.</param>
    /// <param name="rows">Rows; non-negative (0 does nothing).</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="dataType">The type of <paramref name="x"/> and <paramref name="destination"/>: Float32, Float16 or BFloat16.</param>
    /// <param name="weightType"><paramref name="dataType"/> or Float32.</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="xStride">Elements between rows of <paramref name="x"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="destinationStride">Elements between rows of <paramref name="destination"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void RmsNorm(nint x, nint weight, nint destination, long rows, long hidden, TensorDataType dataType,
                               TensorDataType weightType, float epsilon = 1e-6f, bool weightOffsetOne = false, long xStride = 0,
                               long destinationStride = 0, nint stream = 0) =>
        RmsNormCore(x, 0, weight, destination, rows, hidden, dataType, weightType, epsilon, weightOffsetOne, xStride, 0,
                    destinationStride, stream, fused: false);

    /// <summary>
    /// Residual add fused with RMSNorm (<c>lk_cuda_fused_add_rms_norm</c>, vLLM's <c>fused_add_rms_norm</c>), as
    /// <see cref="Kernels.FusedAddRmsNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>.
    /// </summary>
    /// <param name="x">Device pointer: <c>[rows, xStride]</c>.</param>
    /// <param name="residual">Device pointer: <c>[rows, residualStride]</c>, updated in place.</param>
    /// <param name="weight">Device pointer: <c>[hidden]</c> of <paramref name="weightType"/>.</param>
    /// <param name="destination">Device pointer: <c>[rows, destinationStride]</c>; may be <paramref name="x"/> or <paramref name="residual"/>.</param>
    /// <param name="rows">Rows; non-negative.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="dataType">The type of <paramref name="x"/>, <paramref name="residual"/> and <paramref name="destination"/>.</param>
    /// <param name="weightType"><paramref name="dataType"/> or Float32.</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="xStride">Elements between rows of <paramref name="x"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="residualStride">Elements between rows of <paramref name="residual"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="destinationStride">Elements between rows of <paramref name="destination"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void FusedAddRmsNorm(nint x, nint residual, nint weight, nint destination, long rows, long hidden,
                                       TensorDataType dataType, TensorDataType weightType, float epsilon = 1e-6f,
                                       bool weightOffsetOne = false, long xStride = 0, long residualStride = 0,
                                       long destinationStride = 0, nint stream = 0) =>
        RmsNormCore(x, residual, weight, destination, rows, hidden, dataType, weightType, epsilon, weightOffsetOne, xStride,
                    residualStride, destinationStride, stream, fused: true);

    /// <summary>
    /// RMSNorm or LayerNorm with a residual placement (<c>lk_cuda_norm</c>): what
    /// <see cref="Kernels.LayerNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>,
    /// <see cref="Kernels.FusedAddLayerNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>,
    /// <see cref="Kernels.PostRmsNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, float, bool, CudaStream?)"/> and
    /// <see cref="Kernels.PostLayerNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, float, bool, CudaStream?)"/> compute.
    /// </summary>
    /// <param name="type">RMSNorm or LayerNorm.</param>
    /// <param name="residualPlacement">None, pre-norm (the residual updated) or post-norm (read).</param>
    /// <param name="x">Device pointer: <c>[rows, xStride]</c>.</param>
    /// <param name="residual">Device pointer: <c>[rows, residualStride]</c>; 0 with <see cref="ResidualPlacement.None"/>.</param>
    /// <param name="weight">Device pointer: <c>[hidden]</c> of <paramref name="weightType"/>; required for RMSNorm, 0 means 1 for LayerNorm.</param>
    /// <param name="bias">Device pointer: <c>[hidden]</c> of <paramref name="weightType"/>; LayerNorm only, 0 means none.</param>
    /// <param name="destination">Device pointer: <c>[rows, destinationStride]</c>.</param>
    /// <param name="rows">Rows; non-negative.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="dataType">The type of <paramref name="x"/>, <paramref name="residual"/> and <paramref name="destination"/>.</param>
    /// <param name="weightType"><paramref name="dataType"/> or Float32, for <paramref name="weight"/> and <paramref name="bias"/>.</param>
    /// <param name="epsilon">Added to the mean square or variance; finite and non-negative.</param>
    /// <param name="alpha">Post-norm's residual scale; finite (1 for plain post-norm).</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="xStride">Elements between rows of <paramref name="x"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="residualStride">Elements between rows of <paramref name="residual"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="destinationStride">Elements between rows of <paramref name="destination"/>; 0 means <paramref name="hidden"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void Norm(NormType type, ResidualPlacement residualPlacement, nint x, nint residual, nint weight, nint bias,
                            nint destination, long rows, long hidden, TensorDataType dataType, TensorDataType weightType,
                            float epsilon = 1e-6f, float alpha = 1f, bool weightOffsetOne = false, long xStride = 0,
                            long residualStride = 0, long destinationStride = 0, nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        if (type is not (NormType.RmsNorm or NormType.LayerNorm))
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a NormType.");
        if (residualPlacement is not (ResidualPlacement.None or ResidualPlacement.PreNorm or ResidualPlacement.PostNorm))
            throw new ArgumentOutOfRangeException(nameof(residualPlacement), residualPlacement, "Not a ResidualPlacement.");
        // The C field reads 0 as 1 and refuses other values outside POST, where the C# default is 1.
        if (residualPlacement == ResidualPlacement.PostNorm && !float.IsFinite(alpha))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "Must be finite.");
        var p = new NormParams
        {
            X = (void*)x,
            Residual = (void*)residual,
            Y = (void*)destination,
            Weight = (void*)weight,
            Bias = (void*)bias,
            Rows = rows,
            Hidden = hidden,
            XStride = xStride,
            ResidualStride = residualStride,
            YStride = destinationStride,
            Eps = epsilon,
            Alpha = residualPlacement == ResidualPlacement.PostNorm ? alpha : 0f,
            Flags = weightOffsetOne ? NativeConstants.NormWeightOffsetOne : 0u,
            Kind = (NormKind)type,
            ResidualMode = (NormResidual)residualPlacement,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
            WeightDtype = TensorDataTypes.Float(weightType, nameof(weightType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaNorm(stream, &p), "lk_cuda_norm");
    }

    private static void RmsNormCore(nint x, nint residual, nint weight, nint destination, long rows, long hidden, TensorDataType dataType,
                                    TensorDataType weightType, float epsilon, bool weightOffsetOne, long xStride, long residualStride,
                                    long destinationStride, nint stream, bool fused)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new RmsNormParams
        {
            X = (void*)x,
            Residual = (void*)residual,
            Y = (void*)destination,
            Weight = (void*)weight,
            Rows = rows,
            Hidden = hidden,
            XStride = xStride,
            ResidualStride = residualStride,
            YStride = destinationStride,
            Eps = epsilon,
            Flags = weightOffsetOne ? NativeConstants.NormWeightOffsetOne : 0u,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
            WeightDtype = TensorDataTypes.Float(weightType, nameof(weightType)),
        };
        Status status = fused ? NativeMethods.CudaFusedAddRmsNorm(stream, &p) : NativeMethods.CudaRmsNorm(stream, &p);
        NativeStatus.ThrowIfFailed(status, fused ? "lk_cuda_fused_add_rms_norm" : "lk_cuda_rms_norm");
    }
}
