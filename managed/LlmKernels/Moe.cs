using System.Numerics.Tensors;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// Mixture-of-experts routing: each token's router logits, <c>[numTokens, numExperts]</c>, become the <c>topK</c> experts it is
/// sent to and their weights, in f32 whatever the logits' element type (vLLM's <c>topk_softmax</c> and <c>grouped_topk</c>,
/// HF's MoE gates). <see cref="MoeScoring"/> says how the scores are made and which choose; with
/// <see cref="MoeGatingOptions.NumGroups"/> above 1 only the best groups of experts are searched; then the weights are
/// renormalised to sum to 1 if asked, and multiplied by the routed scaling factor.
/// </summary>
/// <remarks>
/// <para>Every ranking is by descending score, ties to the lower expert id, NaN below negative infinity, so a token's ids are
/// distinct and in <c>[0, numExperts)</c>. Each token's ids and weights come out in descending weight order, ties to the lower id.
/// Non-finite logits give the weights the formulas give: a NaN logit makes its token's softmax weights NaN.</para>
/// <para>Shapes, options and overlaps are checked here, each throw naming its C# parameter, before anything is written.
/// Formulas: docs/moe.md.</para>
/// <para>The gating's expert ids then feed the grouped expert GEMMs: <see cref="Routing(ReadOnlySpan{int}, int, int, int, Span{int}, Span{int}, Span{int}, Span{int}, Span{int}, int, int, int, CpuContext?)"/>
/// plans the expert order, <see cref="Permute{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, int, int, int, int, int, CpuContext?)"/>
/// gathers the token rows into it, and <see cref="Combine{T}(ReadOnlySpan{T}, ReadOnlySpan{float}, ReadOnlySpan{int}, Span{T}, int, int, int, int, int, CpuContext?)"/>
/// sums the experts' output rows back per token, weighted.</para>
/// </remarks>
public static partial class Moe
{
    /// <summary>The largest <c>topK</c> the kernel takes.</summary>
    public const int MaxTopK = NativeConstants.MoeMaxTopK;

    /// <summary>The most groups <see cref="MoeGatingOptions.NumGroups"/> may ask for (the native <c>LK_MOE_MAX_GROUPS</c>).</summary>
    public const int MaxGroups = NativeConstants.MoeMaxGroups;

    internal static readonly MoeGatingOptions s_defaultOptions = new();

    /// <summary>
    /// Routes <paramref name="numTokens"/> tokens: for token <c>t</c>, writes its <paramref name="topK"/> experts to
    /// <c>expertIds[t * topK ..]</c> and their weights to <c>weights[t * topK ..]</c>, in descending weight order.
    /// </summary>
    /// <param name="logits">Router logits, <c>[numTokens, logitsStride]</c>, a token's <paramref name="numExperts"/> first.</param>
    /// <param name="weights">The weights, <c>[numTokens, topK]</c>: at least <c>numTokens * topK</c> elements; the first that many are
    /// written. Must not overlap any other argument.</param>
    /// <param name="expertIds">The experts, <c>[numTokens, topK]</c>, each in <c>[0, numExperts)</c>: at least <c>numTokens * topK</c>
    /// elements; the first that many are written. Must not overlap any other argument.</param>
    /// <param name="numTokens">Tokens; non-negative (0 does nothing).</param>
    /// <param name="numExperts">Experts (logits per token); positive.</param>
    /// <param name="topK">Experts per token: from 1 to <c>min(</c><see cref="MaxTopK"/><c>, numExperts)</c>, and with grouped selection at most
    /// the experts of the <see cref="MoeGatingOptions.TopKGroups"/> groups searched.</param>
    /// <param name="options">Scoring, groups, renormalisation and scaling; null means <see cref="MoeGatingOptions"/>' defaults.</param>
    /// <param name="correctionBias">Added to each expert's score to choose the experts, never to the weights
    /// (DeepSeek-V3's <c>e_score_correction_bias</c>), <c>[numExperts]</c>; or empty for none.</param>
    /// <param name="logitsStride">Elements between tokens of <paramref name="logits"/>; 0 means <paramref name="numExperts"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride, option or overlap is wrong; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void Gating<T>(ReadOnlySpan<T> logits, Span<float> weights, Span<int> expertIds, int numTokens, int numExperts,
                                        int topK, MoeGatingOptions? options = null, ReadOnlySpan<float> correctionBias = default,
                                        int logitsStride = 0, CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>(); // an unsupported T before any other check
        options ??= s_defaultOptions;
        (long stride, long outputs, bool grouped) = CheckGatingSizes(numTokens, numExperts, topK, options, logitsStride, logits.Length,
                                                                     weights.Length, expertIds.Length, correctionBias.Length);
        if (numTokens == 0)
            return;

        // Only what the call reads and writes must stay apart.
        ReadOnlySpan<T> read = logits[..(int)((numTokens - 1) * stride + numExperts)];
        Span<float> w = weights[..(int)outputs];
        Span<int> ids = expertIds[..(int)outputs];
        SpanChecks.NoOverlap<float, int>(w, ids, nameof(weights), nameof(expertIds));
        SpanChecks.NoOverlap<float, T>(w, read, nameof(weights), nameof(logits));
        SpanChecks.NoOverlap<float, float>(w, correctionBias, nameof(weights), nameof(correctionBias));
        SpanChecks.NoOverlap<int, T>(ids, read, nameof(expertIds), nameof(logits));
        SpanChecks.NoOverlap<int, float>(ids, correctionBias, nameof(expertIds), nameof(correctionBias));

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* logitsPtr = read)
        fixed (float* weightsPtr = w)
        fixed (int* idsPtr = ids)
        fixed (float* biasPtr = correctionBias)
        {
            var p = new MoeGatingParams
            {
                Logits = logitsPtr,
                Weights = weightsPtr,
                ExpertIds = idsPtr,
                CorrectionBias = correctionBias.IsEmpty ? null : biasPtr,
                NumTokens = numTokens,
                NumExperts = numExperts,
                TopK = topK,
                LogitsStride = stride,
                NumGroups = grouped ? options.NumGroups : 0,
                TopkGroups = grouped ? options.TopKGroups : 0,
                RoutedScalingFactor = options.RoutedScalingFactor,
                Scoring = (Interop.MoeScoring)options.Scoring,
                Flags = options.Renormalize ? (uint)MoeFlags.MoeRenormalize : 0u,
                Dtype = dtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.MoeGating(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_moe_gating");
        }
    }

    /// <summary>
    /// <see cref="Gating{T}(ReadOnlySpan{T}, Span{float}, Span{int}, int, int, int, MoeGatingOptions?, ReadOnlySpan{float}, int, CpuContext?)"/>
    /// over tensors: the tokens and experts are read from the shape of <paramref name="logits"/>, its token stride from its
    /// dimension-0 stride, and <c>topK</c> from the shape of <paramref name="weights"/>.
    /// </summary>
    /// <param name="logits">Router logits, <c>[tokens, numExperts]</c>, at least one expert; experts dense (stride 1), any token stride
    /// of at least <c>numExperts</c> (a view into a wider tensor).</param>
    /// <param name="weights">The weights, <c>[tokens, topK]</c> with <paramref name="logits"/>' tokens, dense; <c>topK</c> from 1 to
    /// <c>min(</c><see cref="MaxTopK"/><c>, numExperts)</c>. Must not overlap any other argument.</param>
    /// <param name="expertIds">The experts, the shape of <paramref name="weights"/>, dense. Must not overlap any other argument.</param>
    /// <param name="options">Scoring, groups, renormalisation and scaling; null means <see cref="MoeGatingOptions"/>' defaults.</param>
    /// <param name="correctionBias">Added to each expert's score to choose the experts, never to the weights, <c>[numExperts]</c>;
    /// or empty for none.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A rank, shape, stride, option or overlap is wrong; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Gating<T>(in ReadOnlyTensorSpan<T> logits, in TensorSpan<float> weights, in TensorSpan<int> expertIds,
                                 MoeGatingOptions? options = null, ReadOnlySpan<float> correctionBias = default,
                                 CpuContext? context = null) where T : unmanaged
    {
        _ = ElementType.Of<T>(); // as in the span overload: an unsupported T before any other check
        Span<int> n = stackalloc int[2];
        TensorChecks.Lengths(logits, 2, "[tokens, numExperts]", n, nameof(logits));
        int tokens = n[0], numExperts = n[1];
        if (numExperts <= 0)
            throw new ArgumentException($"Shape [{tokens}, {numExperts}]: the experts must be positive.", nameof(logits));
        TensorChecks.DenseFrom(logits, 1, nameof(logits));
        int logitsStride = TensorChecks.TokenStride(logits, numExperts, nameof(logits));
        ReadOnlySpan<T> logitsMemory = TensorChecks.Memory(logits, TensorChecks.Extent(logits, nameof(logits)));

        int topK = Outputs(weights, tokens, numExperts, nameof(weights), out Span<float> weightsMemory);
        ReadOnlyTensorSpan<int> ids = expertIds;
        Span<int> m = stackalloc int[2];
        TensorChecks.Lengths(ids, 2, "[tokens, topK]", m, nameof(expertIds));
        if (m[0] != tokens || m[1] != topK)
            throw new ArgumentException($"Shape [{m[0]}, {m[1]}] differs from weights' [{tokens}, {topK}].", nameof(expertIds));
        TensorChecks.DenseFrom(ids, 0, nameof(expertIds));
        Span<int> idsMemory = TensorChecks.Memory(expertIds, TensorChecks.Extent(ids, nameof(expertIds)));

        Gating(logitsMemory, weightsMemory, idsMemory, tokens, numExperts, topK, options, correctionBias, logitsStride, context);
    }

    /// <summary>A dense <c>[tokens, topK]</c> output with a <c>topK</c> the kernel takes; returns <c>topK</c> and the memory.</summary>
    private static int Outputs(in TensorSpan<float> output, int tokens, int numExperts, string name, out Span<float> memory)
    {
        ReadOnlyTensorSpan<float> view = output;
        Span<int> n = stackalloc int[2];
        TensorChecks.Lengths(view, 2, "[tokens, topK]", n, name);
        if (n[0] != tokens)
            throw new ArgumentException($"Shape [{n[0]}, {n[1]}]: {n[0]} tokens, not logits' {tokens}.", name);
        if (n[1] <= 0 || n[1] > Math.Min(MaxTopK, numExperts))
            throw new ArgumentException($"Shape [{n[0]}, {n[1]}]: topK must be in [1, min({MaxTopK}, numExperts = {numExperts})].", name);
        TensorChecks.DenseFrom(view, 0, name);
        memory = TensorChecks.Memory(output, TensorChecks.Extent(view, name));
        return n[1];
    }

    /// <summary>
    /// Gating's sizes and options checked, as both the CPU and the CUDA <c>Gating</c> check them (lengths as longs: device views
    /// have long lengths; a correction bias of length 0 is none): the logits' row stride, the outputs' length, whether the
    /// options group the experts.
    /// </summary>
    private static (long Stride, long Outputs, bool Grouped) CheckGatingSizes(int numTokens, int numExperts, int topK,
                                                                            MoeGatingOptions options, int logitsStride, long logitsLength,
                                                                            long weightsLength, long expertIdsLength, long correctionBiasLength)
    {
        if (numTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(numTokens), numTokens, "Must be non-negative.");
        if (numExperts <= 0)
            throw new ArgumentOutOfRangeException(nameof(numExperts), numExperts, "Must be positive.");
        if (topK <= 0 || topK > Math.Min(MaxTopK, numExperts))
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"Must be in [1, min({MaxTopK}, numExperts = {numExperts})].");
        bool grouped = CheckOptions(options, numExperts, topK);
        long stride = logitsStride == 0 ? numExperts : logitsStride;
        if (logitsStride < 0 || stride < numExperts)
            throw new ArgumentOutOfRangeException(nameof(logitsStride), logitsStride,
                                                  $"Less than numExperts ({numExperts}), a token's logits; 0 means numExperts.");
        SpanChecks.TokenRows(logitsLength, numTokens, stride, numExperts, "logits", nameof(logitsStride));
        long outputs = (long)numTokens * topK;
        if (weightsLength < outputs)
            throw new ArgumentException($"Length {weightsLength} is less than numTokens x topK ({outputs}).", "weights");
        if (expertIdsLength < outputs)
            throw new ArgumentException($"Length {expertIdsLength} is less than numTokens x topK ({outputs}).", "expertIds");
        if (correctionBiasLength != 0 && correctionBiasLength != numExperts)
            throw new ArgumentException($"Length {correctionBiasLength} differs from numExperts ({numExperts}).", "correctionBias");
        return (stride, outputs, grouped);
    }

    /// <summary>Checks the options against the call's sizes; true when they ask for grouped selection.</summary>
    internal static bool CheckOptions(MoeGatingOptions options, int numExperts, int topK)
    {
        const string name = "options";
        if (options.Scoring is not (MoeScoring.SoftmaxTopK or MoeScoring.TopKSoftmax or MoeScoring.Sigmoid))
            throw new ArgumentOutOfRangeException(name, options.Scoring, "Scoring is not a MoeScoring.");
        if (!(options.RoutedScalingFactor >= 0f) || float.IsPositiveInfinity(options.RoutedScalingFactor))
            throw new ArgumentOutOfRangeException(name, options.RoutedScalingFactor,
                                                  "RoutedScalingFactor must be 0 (none) or positive and finite.");
        if (options.NumGroups < 0)
            throw new ArgumentOutOfRangeException(name, options.NumGroups, "NumGroups must be 0 or 1 (no groups), or divide numExperts.");
        if (options.TopKGroups < 0)
            throw new ArgumentOutOfRangeException(name, options.TopKGroups, "TopKGroups must not be negative.");
        if (options.NumGroups <= 1)
            return false;
        if (options.NumGroups > MaxGroups)
            throw new ArgumentOutOfRangeException(name, options.NumGroups, $"NumGroups must be at most {MaxGroups}.");
        if (numExperts % options.NumGroups != 0)
            throw new ArgumentException($"NumGroups ({options.NumGroups}) does not divide numExperts ({numExperts}).", name);
        if (options.TopKGroups < 1 || options.TopKGroups > options.NumGroups)
            throw new ArgumentOutOfRangeException(name, options.TopKGroups, $"TopKGroups must be in [1, NumGroups = {options.NumGroups}].");
        long searched = (long)options.TopKGroups * (numExperts / options.NumGroups);
        if (topK > searched)
            throw new ArgumentOutOfRangeException(nameof(topK), topK,
                                                  $"More than the {searched} experts of the {options.TopKGroups} groups searched (TopKGroups x numExperts / NumGroups).");
        return true;
    }
}
