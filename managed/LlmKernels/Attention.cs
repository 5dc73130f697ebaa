using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// Scaled dot-product attention over a batch of variable-length sequences (FlashAttention's varlen form),
/// with keys and values contiguous (<see cref="O:LlmKernels.Attention.Forward"/>, <c>flash_attn_varlen_func</c>) or in a paged KV cache
/// (<see cref="O:LlmKernels.Attention.ForwardPaged"/>, <c>flash_attn_with_kvcache</c> and vLLM's paged attention), over spans or,
/// with the shapes giving the head counts and strides, tensors. Per sequence and query head
/// <c>h</c>, for query <c>i</c> at key position <c>p = i + Sk - Sq</c> (the queries are the last <c>Sq</c> of the
/// sequence's <c>Sk</c> keys: prefill, decode and chunked prefill alike) and each visible key <c>j</c>:
/// <c>s = softcap(q_i . k_j * scale) - alibiSlopes[h] * |p - j| + bias[...]</c>, and
/// <c>out_i = sum_j softmax(s)_j v_j</c>, in f32 whatever the element type, rounded once.
/// Query head <c>h</c> reads key/value head <c>h / (numHeads / numKvHeads)</c> (GQA, MQA).
/// </summary>
/// <remarks>
/// <para>A query that sees no key (an empty sequence of keys, or every key masked) gets an output of 0 and an lse of
/// negative infinity. A NaN in a score (from q, k or the bias) makes that query head's whole output NaN, as PyTorch does.</para>
/// <para>Shapes, strides and overlaps are checked here, each throw naming its C# parameter. The indices (the offsets'
/// order, block ids, key lengths beyond a block table) are checked by the native library, which reads them anyway: a bad one
/// throws <see cref="ArgumentException"/> whose message names the element, for example <c>cu_seqlens_q[2]</c>, and whose
/// <see cref="ArgumentException.ParamName"/> is the C# parameter. Either way nothing is written when a call throws.</para>
/// <para>Formulas and the kernels' status: docs/attention.md.</para>
/// </remarks>
public static partial class Attention
{
    /// <summary>The largest head dimension the kernels take.</summary>
    public const int MaxHeadDim = 256;

    internal static readonly AttentionOptions s_defaultOptions = new();

    /// <summary>
    /// Attention over contiguous keys and values (FlashAttention's <c>flash_attn_varlen_func</c>): sequence <c>s</c> owns query
    /// tokens <c>[cuSeqlensQ[s], cuSeqlensQ[s + 1])</c> of <paramref name="q"/> and <paramref name="output"/>, and key tokens
    /// <c>[cuSeqlensK[s], cuSeqlensK[s + 1])</c> of <paramref name="k"/> and <paramref name="v"/>.
    /// </summary>
    /// <param name="q">Queries, <c>[totalQ, qStride]</c>, a token's <paramref name="numHeads"/> heads of <paramref name="headDim"/>
    /// first; <c>totalQ = cuSeqlensQ[^1]</c>. May be a slice of a fused qkv buffer.</param>
    /// <param name="k">Keys, <c>[totalK, kStride]</c>, a token's <paramref name="numKvHeads"/> heads first; <c>totalK = cuSeqlensK[^1]</c>.</param>
    /// <param name="v">Values, <c>[totalK, vStride]</c>, laid out like <paramref name="k"/>. May be the same memory as <paramref name="k"/>
    /// or <paramref name="q"/>: inputs are only read.</param>
    /// <param name="output">The result, <c>[totalQ, outputStride]</c>, laid out like <paramref name="q"/>; elements between a token's
    /// heads and the next token are left as they are. Must not overlap any other argument.</param>
    /// <param name="cuSeqlensQ">Query offsets, <c>[sequences + 1]</c>: from 0, non-decreasing. <c>[0]</c> is an empty batch.</param>
    /// <param name="cuSeqlensK">Key offsets, as long as <paramref name="cuSeqlensQ"/>: from 0, non-decreasing.</param>
    /// <param name="numHeads">Query heads per token; positive.</param>
    /// <param name="numKvHeads">Key/value heads per token; positive and dividing <paramref name="numHeads"/>.</param>
    /// <param name="headDim">Elements per head: 1 to <see cref="MaxHeadDim"/>.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="alibiSlopes">ALiBi slopes, <c>[numHeads]</c> (score minus <c>alibiSlopes[h] * |p - j|</c>), or empty for none.</param>
    /// <param name="bias">An additive bias, or empty for none: query token <c>t</c> (global, counted across the batch) of head
    /// <c>h</c> adds <c>bias[h * biasHeadStride + t * biasRowStride + j]</c> to key <c>j</c>'s score (negative infinity hides the key).
    /// Must hold every element a query can read: <c>j</c> up to its sequence's key count minus one.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>; non-negative (0 shares one bias across heads).</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>; positive when a bias is given.</param>
    /// <param name="lse">The log-sum-exp of each query head's scores (FlashAttention's <c>softmax_lse</c>), <c>[totalQ, numHeads]</c>,
    /// or empty for none.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="kStride">Elements between tokens of <paramref name="k"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="vStride">Elements between tokens of <paramref name="v"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="outputStride">Elements between tokens of <paramref name="output"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A shape, stride, option, overlap or offset is wrong; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void Forward<T>(ReadOnlySpan<T> q, ReadOnlySpan<T> k, ReadOnlySpan<T> v, Span<T> output,
                                         ReadOnlySpan<int> cuSeqlensQ, ReadOnlySpan<int> cuSeqlensK, int numHeads, int numKvHeads,
                                         int headDim, AttentionOptions? options = null, ReadOnlySpan<float> alibiSlopes = default,
                                         ReadOnlySpan<float> bias = default, int biasHeadStride = 0, int biasRowStride = 0,
                                         Span<float> lse = default, int qStride = 0, int kStride = 0, int vStride = 0,
                                         int outputStride = 0, CpuContext? context = null) where T : unmanaged
    {
        _ = ElementType.Of<T>(); // throws NotSupportedException for a T the library has no dtype for, before any other check
        CheckHeads(numHeads, numKvHeads, headDim, nameof(numKvHeads), nameof(headDim), inLayout: false);
        options ??= s_defaultOptions;
        CheckOptions(options);
        CheckOffsets(cuSeqlensQ);
        if (cuSeqlensK.Length != cuSeqlensQ.Length)
            throw new ArgumentException($"Length {cuSeqlensK.Length} differs from cuSeqlensQ.Length ({cuSeqlensQ.Length}).", nameof(cuSeqlensK));
        int numSeqs = cuSeqlensQ.Length - 1;
        var (qStep, outStep, totalQ) = CheckQueries(q, output, cuSeqlensQ, numHeads, headDim, qStride, outputStride);
        long kvRow = (long)numKvHeads * headDim;
        long kStep = SpanChecks.TokenStride(kStride, kvRow, nameof(kStride), "numKvHeads x headDim");
        long vStep = SpanChecks.TokenStride(vStride, kvRow, nameof(vStride), "numKvHeads x headDim");
        int totalK = Math.Max(cuSeqlensK[^1], 0);
        SpanChecks.TokenRows(k.Length, totalK, kStep, kvRow, nameof(k), nameof(kStride));
        SpanChecks.TokenRows(v.Length, totalK, vStep, kvRow, nameof(v), nameof(vStride));
        CheckExtras(numHeads, totalQ, alibiSlopes, bias, biasHeadStride, biasRowStride, lse,
                    BiasExtent(cuSeqlensQ, cuSeqlensK, default, paged: false, biasRowStride));
        CheckWritesAlone<T>(output, lse, q, alibiSlopes, bias, cuSeqlensQ, cuSeqlensK, nameof(cuSeqlensK));
        SpanChecks.NoOverlap<T, T>(output, k, nameof(output), nameof(k));
        SpanChecks.NoOverlap<T, T>(output, v, nameof(output), nameof(v));
        SpanChecks.NoOverlap<float, T>(lse, k, nameof(lse), nameof(k));
        SpanChecks.NoOverlap<float, T>(lse, v, nameof(lse), nameof(v));
        if (numSeqs == 0)
            return;

        fixed (T* kPtr = k)
        fixed (T* vPtr = v)
        fixed (int* cuKPtr = cuSeqlensK)
        {
            var p = new AttentionParams
            {
                K = kPtr,
                V = vPtr,
                CuSeqlensK = cuKPtr,
                NumKvHeads = numKvHeads,
                HeadDim = headDim,
                KStride = kStep,
                VStride = vStep,
            };
            Run(ref p, q, output, cuSeqlensQ, numHeads, qStep, outStep, options, alibiSlopes, bias, biasHeadStride, biasRowStride, lse,
                context);
        }
    }

    /// <summary>
    /// Attention over keys and values in a paged KV cache (FlashAttention's <c>flash_attn_with_kvcache</c> with a block table,
    /// vLLM's paged attention): sequence <c>s</c> owns query tokens <c>[cuSeqlensQ[s], cuSeqlensQ[s + 1])</c> and has
    /// <c>seqLensK[s]</c> keys, key <c>j</c> in slot <c>blockTables[s * maxBlocksPerSeq + j / BlockSize] * BlockSize + j % BlockSize</c>
    /// of the caches (<see cref="KvCache.Write{T}(Span{T}, Span{T}, PagedKvCacheLayout, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{long}, int, int, CpuContext?)"/> puts them there). The result is bit for bit that of <see cref="Forward{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, ReadOnlySpan{int}, ReadOnlySpan{int}, int, int, int, AttentionOptions?, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, Span{float}, int, int, int, int, CpuContext?)"/> on
    /// the same keys gathered contiguously.
    /// </summary>
    /// <param name="q">Queries, <c>[totalQ, qStride]</c>, a token's <paramref name="numHeads"/> heads of <c>layout.HeadDim</c> first;
    /// <c>totalQ = cuSeqlensQ[^1]</c>.</param>
    /// <param name="keyCache">The key cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements.</param>
    /// <param name="valueCache">The value cache, exactly <see cref="PagedKvCacheLayout.CacheElements"/> elements; not overlapping
    /// <paramref name="keyCache"/>.</param>
    /// <param name="layout">The shape of both caches: every dimension positive, <see cref="PagedKvCacheLayout.HeadDim"/> at most
    /// <see cref="MaxHeadDim"/>; its <see cref="PagedKvCacheLayout.NumKvHeads"/> divides <paramref name="numHeads"/>.</param>
    /// <param name="blockTables">Each sequence's block ids, <c>[sequences, maxBlocksPerSeq]</c>: at least that many elements. Only the
    /// <c>ceil(seqLensK[s] / BlockSize)</c> entries a sequence uses are read, and each must be in <c>[0, NumBlocks)</c>; the rest may
    /// hold anything.</param>
    /// <param name="maxBlocksPerSeq">Entries per sequence in <paramref name="blockTables"/>; non-negative.</param>
    /// <param name="seqLensK">Keys in each sequence, <c>[sequences]</c>: in <c>[0, maxBlocksPerSeq * BlockSize]</c>.</param>
    /// <param name="output">The result, <c>[totalQ, outputStride]</c>, laid out like <paramref name="q"/>. Must not overlap any other argument.</param>
    /// <param name="cuSeqlensQ">Query offsets, <c>[sequences + 1]</c>: from 0, non-decreasing. <c>[0]</c> is an empty batch.</param>
    /// <param name="numHeads">Query heads per token; positive, a multiple of <c>layout.NumKvHeads</c>.</param>
    /// <param name="options">Scale, soft cap, causal mask and window; null means <see cref="AttentionOptions"/>' defaults.</param>
    /// <param name="alibiSlopes">ALiBi slopes, <c>[numHeads]</c>, or empty for none.</param>
    /// <param name="bias">An additive bias, or empty for none: query token <c>t</c> of head <c>h</c> adds
    /// <c>bias[h * biasHeadStride + t * biasRowStride + j]</c> to key <c>j</c>'s score. Must hold every element a query can read.</param>
    /// <param name="biasHeadStride">Elements between heads of <paramref name="bias"/>; non-negative.</param>
    /// <param name="biasRowStride">Elements between query tokens of <paramref name="bias"/>; positive when a bias is given.</param>
    /// <param name="lse">The log-sum-exp of each query head's scores, <c>[totalQ, numHeads]</c>, or empty for none.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * layout.HeadDim</c>.</param>
    /// <param name="outputStride">Elements between tokens of <paramref name="output"/>; 0 means <c>numHeads * layout.HeadDim</c>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    /// <exception cref="ArgumentException">A shape, stride, option, overlap, offset, key length or block id is wrong; nothing was written.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static unsafe void ForwardPaged<T>(ReadOnlySpan<T> q, ReadOnlySpan<T> keyCache, ReadOnlySpan<T> valueCache,
                                              PagedKvCacheLayout layout, ReadOnlySpan<int> blockTables, int maxBlocksPerSeq,
                                              ReadOnlySpan<int> seqLensK, Span<T> output, ReadOnlySpan<int> cuSeqlensQ, int numHeads,
                                              AttentionOptions? options = null, ReadOnlySpan<float> alibiSlopes = default,
                                              ReadOnlySpan<float> bias = default, int biasHeadStride = 0, int biasRowStride = 0,
                                              Span<float> lse = default, int qStride = 0, int outputStride = 0,
                                              CpuContext? context = null) where T : unmanaged
    {
        _ = ElementType.Of<T>(); // as in Forward
        layout.CheckCaches(keyCache, valueCache);
        int numKvHeads = layout.NumKvHeads, headDim = layout.HeadDim;
        CheckHeads(numHeads, numKvHeads, headDim, nameof(layout), nameof(layout), inLayout: true);
        options ??= s_defaultOptions;
        CheckOptions(options);
        CheckOffsets(cuSeqlensQ);
        int numSeqs = cuSeqlensQ.Length - 1;
        if (seqLensK.Length != numSeqs)
            throw new ArgumentException($"Length {seqLensK.Length} differs from the {numSeqs} sequences of cuSeqlensQ (its length - 1).",
                                        nameof(seqLensK));
        KvCache.CheckBlockTables(blockTables, maxBlocksPerSeq, numSeqs);
        var (qStep, outStep, totalQ) = CheckQueries(q, output, cuSeqlensQ, numHeads, headDim, qStride, outputStride);
        CheckExtras(numHeads, totalQ, alibiSlopes, bias, biasHeadStride, biasRowStride, lse,
                    BiasExtent(cuSeqlensQ, default, seqLensK, paged: true, biasRowStride));
        CheckWritesAlone<T>(output, lse, q, alibiSlopes, bias, cuSeqlensQ, seqLensK, nameof(seqLensK));
        SpanChecks.NoOverlap<T, T>(output, keyCache, nameof(output), nameof(keyCache));
        SpanChecks.NoOverlap<T, T>(output, valueCache, nameof(output), nameof(valueCache));
        SpanChecks.NoOverlap<T, int>(output, blockTables, nameof(output), nameof(blockTables));
        SpanChecks.NoOverlap<float, T>(lse, keyCache, nameof(lse), nameof(keyCache));
        SpanChecks.NoOverlap<float, T>(lse, valueCache, nameof(lse), nameof(valueCache));
        SpanChecks.NoOverlap<float, int>(lse, blockTables, nameof(lse), nameof(blockTables));
        if (numSeqs == 0)
            return;

        fixed (T* keyCachePtr = keyCache)
        fixed (T* valueCachePtr = valueCache)
        fixed (int* tablesPtr = blockTables)
        fixed (int* seqLensPtr = seqLensK)
        {
            var p = new AttentionParams
            {
                SeqlensK = seqLensPtr,
                Cache = new PagedKvCache
                {
                    KeyCache = keyCachePtr,
                    ValueCache = valueCachePtr,
                    NumBlocks = layout.NumBlocks,
                    BlockSize = layout.BlockSize,
                    NumKvHeads = numKvHeads,
                    HeadDim = headDim,
                    Dtype = ElementType.Of<T>(),
                },
                BlockTables = blockTables.IsEmpty ? null : tablesPtr,
                MaxBlocksPerSeq = maxBlocksPerSeq,
                NumKvHeads = numKvHeads,
                HeadDim = headDim,
            };
            Run(ref p, q, output, cuSeqlensQ, numHeads, qStep, outStep, options, alibiSlopes, bias, biasHeadStride, biasRowStride, lse,
                context);
        }
    }

    /// <summary>
    /// The part both forms share: pins the queries, output, offsets and extras, completes <paramref name="p"/> (whose keys the
    /// caller has set and keeps pinned), and calls <c>lk_attention</c>.
    /// </summary>
    private static unsafe void Run<T>(ref AttentionParams p, ReadOnlySpan<T> q, Span<T> output, ReadOnlySpan<int> cuSeqlensQ,
                                      int numHeads, long qStep, long outStep, AttentionOptions options, ReadOnlySpan<float> alibiSlopes,
                                      ReadOnlySpan<float> bias, int biasHeadStride, int biasRowStride, Span<float> lse,
                                      CpuContext? context) where T : unmanaged
    {
        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* qPtr = q)
        fixed (T* outPtr = output)
        fixed (int* cuQPtr = cuSeqlensQ)
        fixed (float* alibiPtr = alibiSlopes)
        fixed (float* biasPtr = bias)
        fixed (float* lsePtr = lse)
        {
            p.Q = qPtr;
            p.Out = outPtr;
            p.Lse = lse.IsEmpty ? null : lsePtr;
            p.CuSeqlensQ = cuQPtr;
            p.NumSeqs = cuSeqlensQ.Length - 1;
            p.NumHeads = numHeads;
            p.QStride = qStep;
            p.OutStride = outStep;
            p.AlibiSlopes = alibiSlopes.IsEmpty ? null : alibiPtr;
            p.Bias = bias.IsEmpty ? null : biasPtr;
            p.BiasHeadStride = bias.IsEmpty ? 0 : biasHeadStride;
            p.BiasRowStride = bias.IsEmpty ? 0 : biasRowStride;
            p.Dtype = ElementType.Of<T>();
            SetOptions(ref p, options);
            Status status;
            fixed (AttentionParams* pp = &p)
            using (var lease = ctx.Acquire())
                status = NativeMethods.Attention(lease.Handle, pp);
            NativeStatus.ThrowIfFailed(status, "lk_attention");
        }
    }

    private static void CheckOffsets(ReadOnlySpan<int> cuSeqlensQ)
    {
        if (cuSeqlensQ.IsEmpty)
            throw new ArgumentException("Empty: the offsets of n sequences are n + 1 elements, from 0.", nameof(cuSeqlensQ));
    }

    /// <summary>
    /// The query side both forms share: the strides of <paramref name="q"/> and <paramref name="output"/> and their lengths for
    /// the total of <paramref name="cuSeqlensQ"/>. Offsets that do not start at 0 or decrease are the native library's to report,
    /// before it reads anything; until then a negative total only means there is nothing to check the lengths against.
    /// </summary>
    private static (long QStep, long OutStep, int TotalQ) CheckQueries<T>(ReadOnlySpan<T> q, Span<T> output, ReadOnlySpan<int> cuSeqlensQ,
                                                                           int numHeads, int headDim, int qStride, int outputStride)
    {
        long qRow = (long)numHeads * headDim;
        long qStep = SpanChecks.TokenStride(qStride, qRow, nameof(qStride), "numHeads x headDim");
        long outStep = SpanChecks.TokenStride(outputStride, qRow, nameof(outputStride), "numHeads x headDim");
        int totalQ = Math.Max(cuSeqlensQ[^1], 0);
        SpanChecks.TokenRows(q.Length, totalQ, qStep, qRow, nameof(q), nameof(qStride));
        SpanChecks.TokenRows(output.Length, totalQ, outStep, qRow, nameof(output), nameof(outputStride));
        return (qStep, outStep, totalQ);
    }

    internal static void SetOptions(ref AttentionParams p, AttentionOptions options)
    {
        p.Scale = options.Scale;
        p.Softcap = options.Softcap;
        p.WindowLeft = options.WindowLeft;
        p.WindowRight = options.WindowRight;
        p.Flags = options.Causal ? (uint)AttentionFlags.AttentionCausal : 0u;
    }

    internal static void CheckHeads(int numHeads, int numKvHeads, int headDim, string kvHeadsName, string headDimName, bool inLayout)
    {
        if (numHeads <= 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, "Must be positive.");
        if (numKvHeads <= 0)
            throw new ArgumentOutOfRangeException(kvHeadsName, numKvHeads, "The key/value heads must be positive.");
        if (numHeads % numKvHeads != 0)
        {
            if (inLayout)
                throw new ArgumentException($"{numHeads} is not a multiple of layout.NumKvHeads ({numKvHeads}).", nameof(numHeads));
            throw new ArgumentException($"numKvHeads ({numKvHeads}) does not divide numHeads ({numHeads}).", kvHeadsName);
        }
        if (headDim <= 0 || headDim > MaxHeadDim)
            throw new ArgumentOutOfRangeException(headDimName, headDim, $"The head dimension must be in [1, {MaxHeadDim}].");
    }

    internal static void CheckOptions(AttentionOptions options)
    {
        const string name = "options";
        if (!float.IsFinite(options.Scale))
            throw new ArgumentOutOfRangeException(name, options.Scale, "Scale must be finite (0 means 1 / sqrt(headDim)).");
        if (!(options.Softcap >= 0f) || float.IsPositiveInfinity(options.Softcap))
            throw new ArgumentOutOfRangeException(name, options.Softcap, "Softcap must be 0 (none) or positive and finite.");
        if (options.WindowLeft < -1)
            throw new ArgumentOutOfRangeException(name, options.WindowLeft, "WindowLeft must be -1 (unbounded) or non-negative.");
        if (options.WindowRight < -1)
            throw new ArgumentOutOfRangeException(name, options.WindowRight, "WindowRight must be -1 (unbounded) or non-negative.");
    }

    /// <summary>
    /// One more than the largest <c>t * biasRowStride + j</c> a query can read, over the sequences with queries and keys
    /// (the query's global token <c>t</c>, key <c>j</c> below the sequence's key count); 0 when no query reads the bias.
    /// Offsets the native library will reject give some number, never an exception here.
    /// </summary>
    private static long BiasExtent(ReadOnlySpan<int> cuSeqlensQ, ReadOnlySpan<int> cuSeqlensK, ReadOnlySpan<int> seqLensK, bool paged,
                                   int biasRowStride)
    {
        long extent = 0;
        for (int s = 0; s + 1 < cuSeqlensQ.Length; s++)
        {
            long queries = (long)cuSeqlensQ[s + 1] - cuSeqlensQ[s];
            long keys = paged ? seqLensK[s] : (long)cuSeqlensK[s + 1] - cuSeqlensK[s];
            if (queries > 0 && keys > 0)
                extent = Math.Max(extent, (cuSeqlensQ[s + 1] - 1L) * biasRowStride + keys);
        }
        return extent;
    }

    private static void CheckExtras(int numHeads, int totalQ, ReadOnlySpan<float> alibiSlopes, ReadOnlySpan<float> bias, int biasHeadStride,
                                    int biasRowStride, ReadOnlySpan<float> lse, long biasRowExtent)
    {
        if (!alibiSlopes.IsEmpty && alibiSlopes.Length != numHeads)
            throw new ArgumentException($"Length {alibiSlopes.Length} differs from numHeads ({numHeads}).", nameof(alibiSlopes));
        if (!lse.IsEmpty && lse.Length < (long)totalQ * numHeads)
            throw new ArgumentException($"Length {lse.Length} is less than totalQ x numHeads ({(long)totalQ * numHeads}).", nameof(lse));
        if (bias.IsEmpty)
            return;
        if (biasRowStride <= 0)
            throw new ArgumentOutOfRangeException(nameof(biasRowStride), biasRowStride, "Must be positive when a bias is given.");
        if (biasHeadStride < 0)
            throw new ArgumentOutOfRangeException(nameof(biasHeadStride), biasHeadStride, "Must be non-negative.");
        long needed = biasRowExtent == 0 ? 0 : (long)(numHeads - 1) * biasHeadStride + biasRowExtent;
        if (bias.Length < needed)
            throw new ArgumentException($"Length {bias.Length} is less than the {needed} elements the queries can read " +
                                        "((numHeads - 1) x biasHeadStride + (last query token) x biasRowStride + its sequence's keys).",
                                        nameof(bias));
    }

    /// <summary>What the call writes (<paramref name="output"/>, <paramref name="lse"/>) overlaps neither each other nor what it reads
    /// (the keys and caches are checked by the caller).</summary>
    private static void CheckWritesAlone<T>(ReadOnlySpan<T> output, ReadOnlySpan<float> lse, ReadOnlySpan<T> q, ReadOnlySpan<float> alibiSlopes,
                                            ReadOnlySpan<float> bias, ReadOnlySpan<int> cuSeqlensQ, ReadOnlySpan<int> keyLengths,
                                            string keyLengthsName) where T : unmanaged
    {
        SpanChecks.NoOverlap<T, T>(output, q, nameof(output), nameof(q));
        SpanChecks.NoOverlap<T, float>(output, lse, nameof(output), nameof(lse));
        SpanChecks.NoOverlap<T, float>(output, alibiSlopes, nameof(output), nameof(alibiSlopes));
        SpanChecks.NoOverlap<T, float>(output, bias, nameof(output), nameof(bias));
        SpanChecks.NoOverlap<T, int>(output, cuSeqlensQ, nameof(output), nameof(cuSeqlensQ));
        SpanChecks.NoOverlap<T, int>(output, keyLengths, nameof(output), keyLengthsName);
        SpanChecks.NoOverlap<float, T>(lse, q, nameof(lse), nameof(q));
        SpanChecks.NoOverlap<float, float>(lse, alibiSlopes, nameof(lse), nameof(alibiSlopes));
        SpanChecks.NoOverlap<float, float>(lse, bias, nameof(lse), nameof(bias));
        SpanChecks.NoOverlap<float, int>(lse, cuSeqlensQ, nameof(lse), nameof(cuSeqlensQ));
        SpanChecks.NoOverlap<float, int>(lse, keyLengths, nameof(lse), keyLengthsName);
    }
}
