using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// The kernels, as static methods over spans in TensorPrimitives' style: inputs are
/// <see cref="ReadOnlySpan{T}"/>, the output is <c>destination</c>, and every shape mismatch is an
/// <see cref="ArgumentException"/> naming the parameter. Element types: <see cref="float"/>,
/// <see cref="Half"/> and <see cref="BFloat16"/>, with f32 arithmetic inside.
/// </summary>
public static partial class Kernels
{
    /// <summary>
    /// RMSNorm over rows of <c>weight.Length</c> elements:
    /// <c>destination = x / sqrt(mean(x²) + epsilon) * weight</c> (or <c>* (1 + weight)</c> with
    /// <paramref name="weightOffsetOne"/>, as Gemma stores it). The result is rounded to
    /// <typeparamref name="T"/> once, after the weight multiply.
    /// </summary>
    /// <param name="x">Rows of the hidden state, <c>[rows, hidden]</c>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void RmsNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> weight, Span<T> destination, float epsilon = 1e-6f,
                                  bool weightOffsetOne = false, CpuContext? context = null) where T : unmanaged =>
        RmsNormCore(x, Span<T>.Empty, weight, ElementType.Of<T>(), destination, epsilon, weightOffsetOne, context, fused: false);

    /// <summary>RMSNorm with an f32 <paramref name="weight"/> for 16-bit activations (checkpoints that keep norms in f32).</summary>
    /// <inheritdoc cref="RmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>
    public static void RmsNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<float> weight, Span<T> destination, float epsilon = 1e-6f,
                                  bool weightOffsetOne = false, CpuContext? context = null) where T : unmanaged =>
        RmsNormCore(x, Span<T>.Empty, weight, Dtype.F32, destination, epsilon, weightOffsetOne, context, fused: false);

    /// <summary>
    /// Residual add fused with RMSNorm (vLLM's <c>fused_add_rms_norm</c>):
    /// <c>residual = residual + x</c>, rounded to <typeparamref name="T"/> and stored; then
    /// <c>destination = RmsNorm(residual) * weight</c> computed from that stored value, so the call
    /// equals an add followed by <see cref="RmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The residual stream, updated in place; as long as <paramref name="x"/> and not overlapping it.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>.</param>
    /// <param name="destination">The normalised output; may be <paramref name="x"/> or <paramref name="residual"/> itself, but must not partially overlap either.</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void FusedAddRmsNorm<T>(ReadOnlySpan<T> x, Span<T> residual, ReadOnlySpan<T> weight, Span<T> destination,
                                          float epsilon = 1e-6f, bool weightOffsetOne = false, CpuContext? context = null)
        where T : unmanaged =>
        RmsNormCore(x, residual, weight, ElementType.Of<T>(), destination, epsilon, weightOffsetOne, context, fused: true);

    /// <summary>Fused residual add and RMSNorm with an f32 <paramref name="weight"/>.</summary>
    /// <inheritdoc cref="FusedAddRmsNorm{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>
    public static void FusedAddRmsNorm<T>(ReadOnlySpan<T> x, Span<T> residual, ReadOnlySpan<float> weight, Span<T> destination,
                                          float epsilon = 1e-6f, bool weightOffsetOne = false, CpuContext? context = null)
        where T : unmanaged =>
        RmsNormCore(x, residual, weight, Dtype.F32, destination, epsilon, weightOffsetOne, context, fused: true);

    private static unsafe void RmsNormCore<T, TWeight>(ReadOnlySpan<T> x, Span<T> residual, ReadOnlySpan<TWeight> weight,
                                                       Dtype weightDtype, Span<T> destination, float epsilon,
                                                       bool weightOffsetOne, CpuContext? context, bool fused)
        where T : unmanaged where TWeight : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        int rows = SpanChecks.Rows(x, weight.Length, nameof(x), nameof(weight));
        SpanChecks.SameLength<T, T>(x, destination, nameof(x), nameof(destination));
        SpanChecks.NoPartialOverlap<T>(x, destination, nameof(destination), nameof(x));
        SpanChecks.NoOverlap<T, TWeight>(destination, weight, nameof(destination), nameof(weight));
        if (fused)
        {
            SpanChecks.SameLength<T, T>(x, residual, nameof(x), nameof(residual));
            SpanChecks.NoOverlap<T, T>(residual, x, nameof(residual), nameof(x));
            SpanChecks.NoOverlap<T, TWeight>(residual, weight, nameof(residual), nameof(weight));
            SpanChecks.NoPartialOverlap<T>(residual, destination, nameof(destination), nameof(residual));
        }
        SpanChecks.FiniteNonNegative(epsilon, nameof(epsilon));
        if (rows == 0)
            return;

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* xPtr = x)
        fixed (T* residualPtr = residual)
        fixed (TWeight* weightPtr = weight)
        fixed (T* yPtr = destination)
        {
            var p = new RmsNormParams
            {
                X = xPtr,
                Residual = fused ? residualPtr : null,
                Y = yPtr,
                Weight = weightPtr,
                Rows = rows,
                Hidden = weight.Length,
                Eps = epsilon,
                Flags = weightOffsetOne ? NativeConstants.NormWeightOffsetOne : 0u,
                Dtype = dtype,
                WeightDtype = weightDtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = fused ? NativeMethods.FusedAddRmsNorm(lease.Handle, &p) : NativeMethods.RmsNorm(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, fused ? "lk_fused_add_rms_norm" : "lk_rms_norm");
        }
    }
}
