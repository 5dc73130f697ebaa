namespace LlmKernels;

// The norms on a CUDA device: the span overloads' parameters, defaults and checks over device views, a stream for the context.
public static partial class Kernels
{
    /// <summary>
    /// RMSNorm on a CUDA device (<c>lk_cuda_rms_norm</c>): what
    /// <see cref="RmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/> computes, with the same rounding
    /// points (the GPU sums a row in another order, so results agree to an ulp of the statistics). Queued on
    /// <paramref name="stream"/>; synchronise it before reading <paramref name="destination"/> on the host.
    /// </summary>
    /// <param name="x">Rows of the hidden state, <c>[rows, hidden]</c>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void RmsNorm<T>(DeviceSpan<T> x, DeviceSpan<T> weight, DeviceSpan<T> destination, float epsilon = 1e-6f,
                                  bool weightOffsetOne = false, CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.RmsNorm, ResidualPlacement.None, x, default, weight, default, TensorDataTypes.Of<T>(), weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream, rmsEntryPoint: true);

    /// <summary>RMSNorm on a CUDA device with an f32 <paramref name="weight"/>.</summary>
    /// <inheritdoc cref="RmsNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>
    public static void RmsNorm<T>(DeviceSpan<T> x, DeviceSpan<float> weight, DeviceSpan<T> destination, float epsilon = 1e-6f,
                                  bool weightOffsetOne = false, CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.RmsNorm, ResidualPlacement.None, x, default, weight, default, TensorDataType.Float32, weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream, rmsEntryPoint: true);

    /// <summary>
    /// Residual add fused with RMSNorm on a CUDA device (<c>lk_cuda_fused_add_rms_norm</c>): what
    /// <see cref="FusedAddRmsNorm{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/> computes; the
    /// stored residual is bit for bit the CPU's. Queued on <paramref name="stream"/>.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The residual stream, updated in place; as long as <paramref name="x"/> and not overlapping it.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>.</param>
    /// <param name="destination">The normalised output; may be <paramref name="x"/> or <paramref name="residual"/> itself, but must not partially overlap either.</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void FusedAddRmsNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<T> weight, DeviceSpan<T> destination,
                                          float epsilon = 1e-6f, bool weightOffsetOne = false, CudaStream? stream = null)
        where T : unmanaged =>
        CudaNorm(NormType.RmsNorm, ResidualPlacement.PreNorm, x, residual, weight, default, TensorDataTypes.Of<T>(), weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream, rmsEntryPoint: true);

    /// <summary>Fused residual add and RMSNorm on a CUDA device with an f32 <paramref name="weight"/>.</summary>
    /// <inheritdoc cref="FusedAddRmsNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>
    public static void FusedAddRmsNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<float> weight, DeviceSpan<T> destination,
                                          float epsilon = 1e-6f, bool weightOffsetOne = false, CudaStream? stream = null)
        where T : unmanaged =>
        CudaNorm(NormType.RmsNorm, ResidualPlacement.PreNorm, x, residual, weight, default, TensorDataType.Float32, weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream, rmsEntryPoint: true);

    /// <summary>
    /// Post-norm RMSNorm on a CUDA device (<c>lk_cuda_norm</c>): what
    /// <see cref="PostRmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, float, bool, CpuContext?)"/> computes.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The block's input, as long as <paramref name="x"/>; read only, and it must not overlap <paramref name="destination"/>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself but must not partially overlap it.</param>
    /// <param name="alpha">The residual's scale; finite (1 for post-norm, DeepNorm's <c>(2N)^(1/4)</c>).</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void PostRmsNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<T> weight, DeviceSpan<T> destination,
                                      float alpha = 1f, float epsilon = 1e-6f, bool weightOffsetOne = false, CudaStream? stream = null)
        where T : unmanaged =>
        CudaNorm(NormType.RmsNorm, ResidualPlacement.PostNorm, x, residual, weight, default, TensorDataTypes.Of<T>(), weight.Length,
                 nameof(weight), destination, alpha, epsilon, weightOffsetOne, stream);

    /// <summary>Post-norm RMSNorm on a CUDA device with an f32 <paramref name="weight"/>.</summary>
    /// <inheritdoc cref="PostRmsNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, float, bool, CudaStream?)"/>
    public static void PostRmsNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<float> weight, DeviceSpan<T> destination,
                                      float alpha = 1f, float epsilon = 1e-6f, bool weightOffsetOne = false, CudaStream? stream = null)
        where T : unmanaged =>
        CudaNorm(NormType.RmsNorm, ResidualPlacement.PostNorm, x, residual, weight, default, TensorDataType.Float32, weight.Length,
                 nameof(weight), destination, alpha, epsilon, weightOffsetOne, stream);

    /// <summary>
    /// LayerNorm on a CUDA device (<c>lk_cuda_norm</c>): what
    /// <see cref="LayerNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/> computes.
    /// </summary>
    /// <param name="x">Rows of the hidden state, <c>[rows, hidden]</c>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>; it sets hidden.</param>
    /// <param name="bias">The per-channel shift, <c>[hidden]</c>, or empty for none.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void LayerNorm<T>(DeviceSpan<T> x, DeviceSpan<T> weight, DeviceSpan<T> bias, DeviceSpan<T> destination,
                                    float epsilon = 1e-5f, bool weightOffsetOne = false, CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.LayerNorm, ResidualPlacement.None, x, default, weight, bias, TensorDataTypes.Of<T>(), weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream);

    /// <summary>LayerNorm on a CUDA device with an f32 <paramref name="weight"/> and <paramref name="bias"/>.</summary>
    /// <inheritdoc cref="LayerNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>
    public static void LayerNorm<T>(DeviceSpan<T> x, DeviceSpan<float> weight, DeviceSpan<float> bias, DeviceSpan<T> destination,
                                    float epsilon = 1e-5f, bool weightOffsetOne = false, CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.LayerNorm, ResidualPlacement.None, x, default, weight, bias, TensorDataType.Float32, weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream);

    /// <summary>LayerNorm without a weight or bias on a CUDA device, over rows of <paramref name="hidden"/> elements.</summary>
    /// <param name="x">Rows of the hidden state, <c>[rows, hidden]</c>.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself but must not partially overlap it.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void LayerNorm<T>(DeviceSpan<T> x, int hidden, DeviceSpan<T> destination, float epsilon = 1e-5f,
                                    CudaStream? stream = null) where T : unmanaged
    {
        if (hidden <= 0)
            ThrowNotPositive(hidden, nameof(hidden));
        CudaNorm<T, T>(NormType.LayerNorm, ResidualPlacement.None, x, default, default, default, TensorDataTypes.Of<T>(), hidden,
                       nameof(hidden), destination, 0f, epsilon, false, stream);
    }

    /// <summary>
    /// Residual add fused with LayerNorm on a CUDA device: what
    /// <see cref="FusedAddLayerNorm{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/> computes.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The residual stream, updated in place; as long as <paramref name="x"/> and not overlapping it.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>; it sets hidden.</param>
    /// <param name="bias">The per-channel shift, <c>[hidden]</c>, or empty for none.</param>
    /// <param name="destination">The normalised output; may be <paramref name="x"/> or <paramref name="residual"/> itself, but must not partially overlap either.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void FusedAddLayerNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<T> weight, DeviceSpan<T> bias,
                                            DeviceSpan<T> destination, float epsilon = 1e-5f, bool weightOffsetOne = false,
                                            CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.LayerNorm, ResidualPlacement.PreNorm, x, residual, weight, bias, TensorDataTypes.Of<T>(), weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream);

    /// <summary>Fused residual add and LayerNorm on a CUDA device with an f32 <paramref name="weight"/> and <paramref name="bias"/>.</summary>
    /// <inheritdoc cref="FusedAddLayerNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, bool, CudaStream?)"/>
    public static void FusedAddLayerNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<float> weight, DeviceSpan<float> bias,
                                            DeviceSpan<T> destination, float epsilon = 1e-5f, bool weightOffsetOne = false,
                                            CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.LayerNorm, ResidualPlacement.PreNorm, x, residual, weight, bias, TensorDataType.Float32, weight.Length,
                 nameof(weight), destination, 0f, epsilon, weightOffsetOne, stream);

    /// <summary>
    /// Post-norm LayerNorm on a CUDA device: what
    /// <see cref="PostLayerNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, float, bool, CpuContext?)"/> computes.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The block's input, as long as <paramref name="x"/>; read only, and it must not overlap <paramref name="destination"/>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>; it sets hidden.</param>
    /// <param name="bias">The per-channel shift, <c>[hidden]</c>, or empty for none.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself but must not partially overlap it.</param>
    /// <param name="alpha">The residual's scale; finite.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void PostLayerNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<T> weight, DeviceSpan<T> bias,
                                        DeviceSpan<T> destination, float alpha = 1f, float epsilon = 1e-5f,
                                        bool weightOffsetOne = false, CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.LayerNorm, ResidualPlacement.PostNorm, x, residual, weight, bias, TensorDataTypes.Of<T>(), weight.Length,
                 nameof(weight), destination, alpha, epsilon, weightOffsetOne, stream);

    /// <summary>Post-norm LayerNorm on a CUDA device with an f32 <paramref name="weight"/> and <paramref name="bias"/>.</summary>
    /// <inheritdoc cref="PostLayerNorm{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, float, float, bool, CudaStream?)"/>
    public static void PostLayerNorm<T>(DeviceSpan<T> x, DeviceSpan<T> residual, DeviceSpan<float> weight, DeviceSpan<float> bias,
                                        DeviceSpan<T> destination, float alpha = 1f, float epsilon = 1e-5f,
                                        bool weightOffsetOne = false, CudaStream? stream = null) where T : unmanaged =>
        CudaNorm(NormType.LayerNorm, ResidualPlacement.PostNorm, x, residual, weight, bias, TensorDataType.Float32, weight.Length,
                 nameof(weight), destination, alpha, epsilon, weightOffsetOne, stream);

    /// <summary>
    /// The one CUDA norm wrapper: the span overloads' checks (NormCore's, in the same order and words) over device views, then
    /// <see cref="CudaKernels"/>' raw call with the views' addresses held. <paramref name="rmsEntryPoint"/>: RMSNorm without or with
    /// a pre-norm residual through <c>lk_cuda_rms_norm</c> / <c>lk_cuda_fused_add_rms_norm</c>, as the CPU's RmsNorm calls do.
    /// </summary>
    private static void CudaNorm<T, TWeight>(NormType type, ResidualPlacement mode, DeviceSpan<T> x, DeviceSpan<T> residual,
                                             DeviceSpan<TWeight> weight, DeviceSpan<TWeight> bias, TensorDataType weightType, long hidden,
                                             string hiddenName, DeviceSpan<T> destination, float alpha, float epsilon,
                                             bool weightOffsetOne, CudaStream? stream, bool rmsEntryPoint = false)
        where T : unmanaged where TWeight : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        long rows = DeviceChecks.Rows(x.Length, hidden, nameof(x), hiddenName);
        DeviceChecks.SameLength(x.Length, destination.Length, nameof(x), nameof(destination));
        if (!bias.IsEmpty)
            DeviceChecks.SameLength(weight.IsEmpty ? bias.Length : weight.Length, bias.Length, nameof(weight), nameof(bias));
        if (weightOffsetOne && weight.IsEmpty)
            ThrowOffsetWithoutWeight(nameof(weightOffsetOne));
        if (mode != ResidualPlacement.None)
            DeviceChecks.SameLength(x.Length, residual.Length, nameof(x), nameof(residual));
        if (mode == ResidualPlacement.PostNorm && !float.IsFinite(alpha))
            ThrowNotFinite(alpha, nameof(alpha));
        SpanChecks.FiniteNonNegative(epsilon, nameof(epsilon));

        using var call = new DeviceCall(stream);
        DeviceRange xr = call.Range(x, nameof(x)), yr = call.Range(destination, nameof(destination));
        DeviceRange wr = call.Range(weight, nameof(weight)), br = call.Range(bias, nameof(bias));
        DeviceRange rr = call.Range(residual, nameof(residual));
        DeviceChecks.NoPartialOverlap(xr, yr, nameof(destination), nameof(x));
        DeviceChecks.NoOverlap(yr, wr, nameof(destination), nameof(weight));
        DeviceChecks.NoOverlap(yr, br, nameof(destination), nameof(bias));
        if (mode == ResidualPlacement.PreNorm)
        {
            DeviceChecks.NoOverlap(rr, xr, nameof(residual), nameof(x));
            DeviceChecks.NoOverlap(rr, wr, nameof(residual), nameof(weight));
            DeviceChecks.NoOverlap(rr, br, nameof(residual), nameof(bias));
            DeviceChecks.NoPartialOverlap(rr, yr, nameof(destination), nameof(residual));
        }
        else if (mode == ResidualPlacement.PostNorm)
        {
            DeviceChecks.NoOverlap(yr, rr, nameof(destination), nameof(residual));
        }
        if (rows == 0)
            return;

        if (rmsEntryPoint && mode == ResidualPlacement.None)
            CudaKernels.RmsNorm(xr.Address, wr.Address, yr.Address, rows, hidden, dataType, weightType, epsilon, weightOffsetOne,
                                stream: call.Stream);
        else if (rmsEntryPoint)
            CudaKernels.FusedAddRmsNorm(xr.Address, rr.Address, wr.Address, yr.Address, rows, hidden, dataType, weightType, epsilon,
                                        weightOffsetOne, stream: call.Stream);
        else
            CudaKernels.Norm(type, mode, xr.Address, rr.Address, wr.Address, br.Address, yr.Address, rows, hidden, dataType, weightType,
                             epsilon, mode == ResidualPlacement.PostNorm ? alpha : 1f, weightOffsetOne, stream: call.Stream);
    }
}
