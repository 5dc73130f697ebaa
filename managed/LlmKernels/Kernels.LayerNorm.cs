using LlmKernels.Interop;

namespace LlmKernels;

public static partial class Kernels
{
    /// <summary>
    /// LayerNorm over rows of <c>weight.Length</c> elements (<c>torch.nn.LayerNorm</c>):
    /// <c>destination = (x - mean) / sqrt(var + epsilon) * weight + bias</c>, with the biased variance. Statistics are
    /// f32 in two passes over each row (no cancellation on rows with a large mean); the result is rounded to
    /// <typeparamref name="T"/> once, after the bias add.
    /// </summary>
    /// <param name="x">Rows of the hidden state, <c>[rows, hidden]</c>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>; it sets hidden.</param>
    /// <param name="bias">The per-channel shift, <c>[hidden]</c>, or empty for none.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c> (zero-centred gamma, Megatron's LayerNorm1P).</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void LayerNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, Span<T> destination,
                                    float epsilon = 1e-5f, bool weightOffsetOne = false, CpuContext? context = null)
        where T : unmanaged =>
        NormCore<T, T>(NormKind.NormLayer, NormResidual.None, x, ReadOnlySpan<T>.Empty, weight, bias, ElementType.Of<T>(),
                       weight.Length, nameof(weight), destination, 0f, epsilon, weightOffsetOne, context);

    /// <summary>LayerNorm with an f32 <paramref name="weight"/> and <paramref name="bias"/> for 16-bit activations.</summary>
    /// <inheritdoc cref="LayerNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>
    public static void LayerNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<T> destination,
                                    float epsilon = 1e-5f, bool weightOffsetOne = false, CpuContext? context = null)
        where T : unmanaged =>
        NormCore<T, float>(NormKind.NormLayer, NormResidual.None, x, ReadOnlySpan<T>.Empty, weight, bias, Dtype.F32,
                           weight.Length, nameof(weight), destination, 0f, epsilon, weightOffsetOne, context);

    /// <summary>
    /// LayerNorm without a weight or bias (<c>elementwise_affine=False</c>):
    /// <c>destination = (x - mean) / sqrt(var + epsilon)</c> over rows of <paramref name="hidden"/> elements.
    /// </summary>
    /// <param name="x">Rows of the hidden state, <c>[rows, hidden]</c>.</param>
    /// <param name="hidden">Elements per row; positive.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself but must not partially overlap it.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void LayerNorm<T>(ReadOnlySpan<T> x, int hidden, Span<T> destination, float epsilon = 1e-5f,
                                    CpuContext? context = null) where T : unmanaged
    {
        if (hidden <= 0)
            ThrowNotPositive(hidden, nameof(hidden));
        NormCore<T, T>(NormKind.NormLayer, NormResidual.None, x, ReadOnlySpan<T>.Empty, ReadOnlySpan<T>.Empty,
                       ReadOnlySpan<T>.Empty, ElementType.Of<T>(), hidden, nameof(hidden), destination, 0f, epsilon, false, context);
    }

    /// <summary>
    /// Residual add fused with LayerNorm (pre-norm): <c>residual = residual + x</c>, rounded to <typeparamref name="T"/>
    /// and stored; then <c>destination = LayerNorm(residual) * weight + bias</c> from that stored value, so the call equals
    /// an add followed by <see cref="LayerNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The residual stream, updated in place; as long as <paramref name="x"/> and not overlapping it.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>; it sets hidden.</param>
    /// <param name="bias">The per-channel shift, <c>[hidden]</c>, or empty for none.</param>
    /// <param name="destination">The normalised output; may be <paramref name="x"/> or <paramref name="residual"/> itself, but must not partially overlap either.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void FusedAddLayerNorm<T>(ReadOnlySpan<T> x, Span<T> residual, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias,
                                            Span<T> destination, float epsilon = 1e-5f, bool weightOffsetOne = false,
                                            CpuContext? context = null) where T : unmanaged =>
        NormCore<T, T>(NormKind.NormLayer, NormResidual.Pre, x, residual, weight, bias, ElementType.Of<T>(), weight.Length, nameof(weight),
                       destination, 0f, epsilon, weightOffsetOne, context);

    /// <summary>Fused residual add and LayerNorm with an f32 <paramref name="weight"/> and <paramref name="bias"/>.</summary>
    /// <inheritdoc cref="FusedAddLayerNorm{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>
    public static void FusedAddLayerNorm<T>(ReadOnlySpan<T> x, Span<T> residual, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
                                            Span<T> destination, float epsilon = 1e-5f, bool weightOffsetOne = false,
                                            CpuContext? context = null) where T : unmanaged =>
        NormCore<T, float>(NormKind.NormLayer, NormResidual.Pre, x, residual, weight, bias, Dtype.F32, weight.Length, nameof(weight),
                           destination, 0f, epsilon, weightOffsetOne, context);

    /// <summary>
    /// Post-norm LayerNorm: <c>destination = LayerNorm(alpha * residual + x) * weight + bias</c>, the sum computed in f32
    /// and rounded to <typeparamref name="T"/> once before the statistics. The residual is only read: BERT's and the
    /// original Transformer's placement with <paramref name="alpha"/> = 1, DeepNorm (GLM-130B) with
    /// <c>alpha = (2N)^(1/4)</c>; ONNX Runtime's SkipLayerNormalization without its extra bias.
    /// </summary>
    /// <param name="x">The sublayer output, <c>[rows, hidden]</c>.</param>
    /// <param name="residual">The block's input, as long as <paramref name="x"/>; read only, and it must not overlap <paramref name="destination"/>.</param>
    /// <param name="weight">The per-channel scale, <c>[hidden]</c>; it sets hidden.</param>
    /// <param name="bias">The per-channel shift, <c>[hidden]</c>, or empty for none.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself but must not partially overlap it.</param>
    /// <param name="alpha">The residual's scale; finite.</param>
    /// <param name="epsilon">Added to the variance; finite and non-negative.</param>
    /// <param name="weightOffsetOne">Multiply by <c>1 + weight</c>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void PostLayerNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias,
                                        Span<T> destination, float alpha = 1f, float epsilon = 1e-5f,
                                        bool weightOffsetOne = false, CpuContext? context = null) where T : unmanaged =>
        NormCore<T, T>(NormKind.NormLayer, NormResidual.Post, x, residual, weight, bias, ElementType.Of<T>(), weight.Length, nameof(weight),
                       destination, alpha, epsilon, weightOffsetOne, context);

    /// <summary>Post-norm LayerNorm with an f32 <paramref name="weight"/> and <paramref name="bias"/>.</summary>
    /// <inheritdoc cref="PostLayerNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, float, bool, CpuContext?)"/>
    public static void PostLayerNorm<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> residual, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
                                        Span<T> destination, float alpha = 1f, float epsilon = 1e-5f,
                                        bool weightOffsetOne = false, CpuContext? context = null) where T : unmanaged =>
        NormCore<T, float>(NormKind.NormLayer, NormResidual.Post, x, residual, weight, bias, Dtype.F32, weight.Length, nameof(weight),
                           destination, alpha, epsilon, weightOffsetOne, context);
}
