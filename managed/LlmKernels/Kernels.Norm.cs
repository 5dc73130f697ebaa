using System.Diagnostics.CodeAnalysis;
using LlmKernels.Interop;

namespace LlmKernels;

public static partial class Kernels
{
    /// <summary>
    /// Post-norm RMSNorm: <c>destination = RmsNorm(alpha * residual + x) * weight</c>, where the sum is
    /// computed in f32 and rounded to <typeparamref name="T"/> once before the statistics (so the call
    /// equals a separate add followed by <see cref="RmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>).
    /// The residual is only read: the original Transformer's post-LN placement with <paramref name="alpha"/> = 1, and
    /// DeepNorm (GLM-130B) with <c>alpha = (2N)^(1/4)</c> for N layers. Store the sum yourself if the next block needs it.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The block's input, as long as <paramref name="x"/>; read only, and it must not overlap <paramref name="destination"/>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself but must not partially overlap it.</param>
    /// <param name="alpha">The residual's scale; finite (1 for post-norm, DeepNorm's <c>(2N)^(1/4)</c>).</param>
    /// <param name="epsilon">Added to the mean square; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (Gemma).</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void PostRmsNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<T> weight, Span<T> destination,
                                      float alpha = 1f, float epsilon = 1e-6f, bool weightOffsetOne = false,
                                      CpuContext? context = null) where T : unmanaged =>
        NormCore<T, T>(NormKind.NormRms, NormResidual.Post, x, residual, weight, ReadOnlySpan<T>.Empty, ElementType.Of<T>(),
                       weight.Length, nameof(weight), destination, alpha, epsilon, weightOffsetOne, context);

    /// <summary>Post-norm RMSNorm with an f32 <paramref name="weight"/>.</summary>
    /// <inheritdoc cref="PostRmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, float, bool, CpuContext?)"/>
    public static void PostRmsNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<float> weight, Span<T> destination,
                                      float alpha = 1f, float epsilon = 1e-6f, bool weightOffsetOne = false,
                                      CpuContext? context = null) where T : unmanaged =>
        NormCore<T, float>(NormKind.NormRms, NormResidual.Post, x, residual, weight, ReadOnlySpan<float>.Empty, Dtype.F32,
                           weight.Length, nameof(weight), destination, alpha, epsilon, weightOffsetOne, context);

    /// <summary>
    /// The one wrapper of <c>lk_norm</c>: managed checks naming the C# parameters, then the native call.
    /// <paramref name="residual"/> is written (PRE) through a pointer obtained from a read-only span; the
    /// public methods pass a writable span for PRE.
    /// </summary>
    private static unsafe void NormCore<T, TWeight>(NormKind kind, NormResidual mode, ReadOnlySpan<T> x, ReadOnlySpan<T> residual,
                                                    ReadOnlySpan<TWeight> weight, ReadOnlySpan<TWeight> bias, Dtype weightDtype,
                                                    int hidden, string hiddenName, Span<T> destination, float alpha, float epsilon,
                                                    bool weightOffsetOne, CpuContext? context)
        where T : unmanaged where TWeight : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        int rows = SpanChecks.Rows(x, hidden, nameof(x), hiddenName);
        SpanChecks.SameLength<T, T>(x, destination, nameof(x), nameof(destination));
        SpanChecks.NoPartialOverlap<T>(x, destination, nameof(destination), nameof(x));
        SpanChecks.NoOverlap<T, TWeight>(destination, weight, nameof(destination), nameof(weight));
        if (!bias.IsEmpty)
        {
            SpanChecks.SameLength<TWeight, TWeight>(weight.IsEmpty ? bias : weight, bias, nameof(weight), nameof(bias));
            SpanChecks.NoOverlap<T, TWeight>(destination, bias, nameof(destination), nameof(bias));
        }
        if (weightOffsetOne && weight.IsEmpty)
            ThrowOffsetWithoutWeight(nameof(weightOffsetOne));
        if (mode == NormResidual.Pre)
        {
            SpanChecks.SameLength<T, T>(x, residual, nameof(x), nameof(residual));
            SpanChecks.NoOverlap<T, T>(residual, x, nameof(residual), nameof(x));
            SpanChecks.NoOverlap<T, TWeight>(residual, weight, nameof(residual), nameof(weight));
            SpanChecks.NoOverlap<T, TWeight>(residual, bias, nameof(residual), nameof(bias));
            SpanChecks.NoPartialOverlap<T>(residual, destination, nameof(destination), nameof(residual));
        }
        else if (mode == NormResidual.Post)
        {
            SpanChecks.SameLength<T, T>(x, residual, nameof(x), nameof(residual));
            SpanChecks.NoOverlap<T, T>(destination, residual, nameof(destination), nameof(residual));
            if (!float.IsFinite(alpha))
                ThrowNotFinite(alpha, nameof(alpha));
        }
        SpanChecks.FiniteNonNegative(epsilon, nameof(epsilon));
        if (rows == 0)
            return;

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* xPtr = x)
        fixed (T* residualPtr = residual)
        fixed (TWeight* weightPtr = weight)
        fixed (TWeight* biasPtr = bias)
        fixed (T* yPtr = destination)
        {
            var p = new NormParams
            {
                X = xPtr,
                Residual = mode == NormResidual.None ? null : residualPtr,
                Y = yPtr,
                Weight = weight.IsEmpty ? null : weightPtr,
                Bias = bias.IsEmpty ? null : biasPtr,
                Rows = rows,
                Hidden = hidden,
                Eps = epsilon,
                Alpha = mode == NormResidual.Post ? alpha : 0f,
                Flags = weightOffsetOne ? NativeConstants.NormWeightOffsetOne : 0u,
                Kind = kind,
                ResidualMode = mode,
                Dtype = dtype,
                WeightDtype = weightDtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.Norm(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_norm");
        }
    }

    [DoesNotReturn]
    private static void ThrowOffsetWithoutWeight(string name) =>
        throw new ArgumentException("The weight offset needs a weight (an empty weight means no scale).", name);

    [DoesNotReturn]
    private static void ThrowNotFinite(float value, string name) =>
        throw new ArgumentOutOfRangeException(name, value, "Must be finite.");

    [DoesNotReturn]
    private static void ThrowNotPositive(int value, string name) =>
        throw new ArgumentOutOfRangeException(name, value, "Must be positive.");
}
