using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>Which elements of a head RoPE rotates together.</summary>
public enum RopeStyle
{
    /// <summary>Pairs <c>(i, i + rotaryDim/2)</c>: GPT-NeoX, Llama, Mistral, Qwen (HF's <c>rotate_half</c>).</summary>
    NeoX = 0,

    /// <summary>Pairs <c>(2i, 2i + 1)</c>: GPT-J, RoFormer, ChatGLM (HF's <c>rotate_every_two</c>).</summary>
    GptJ = 1,
}

public static partial class Kernels
{
    /// <summary>
    /// Rotary position embedding, in place on <paramref name="q"/> and <paramref name="k"/>: for each
    /// token <c>t</c>, head and pair <c>j &lt; rotaryDim/2</c> of elements <c>(a, b)</c>, with
    /// <c>c, s = cache[positions[t], j], cache[positions[t], rotaryDim/2 + j]</c>:
    /// <c>a' = a c - b s</c>, <c>b' = b c + a s</c> in f32, rounded once to <typeparamref name="T"/>.
    /// Elements from <c>rotaryDim</c> to <paramref name="headDim"/> are left as they are (partial rotary).
    /// </summary>
    /// <param name="q">Queries, <c>[tokens, qStride]</c>, a token's <paramref name="numHeads"/> heads of <paramref name="headDim"/> first.</param>
    /// <param name="k">Keys, <c>[tokens, kStride]</c>, a token's <paramref name="numKvHeads"/> heads first; empty for queries only.
    /// May be a slice of the same fused qkv buffer as <paramref name="q"/> as long as no head of one is a head of the other.</param>
    /// <param name="positions">The position of each token: <c>[0, cache.MaxPosition)</c>.</param>
    /// <param name="cache">The cos/sin cache (its <see cref="RopeCache.RotaryDim"/> is the rotary dimension).</param>
    /// <param name="numHeads">Query heads per token.</param>
    /// <param name="numKvHeads">Key heads per token; divides <paramref name="numHeads"/> (GQA, MQA). Ignored when <paramref name="k"/> is empty.</param>
    /// <param name="headDim">Elements per head; at least the rotary dimension.</param>
    /// <param name="style">How elements pair up.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="kStride">Elements between tokens of <paramref name="k"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void Rope<T>(Span<T> q, Span<T> k, ReadOnlySpan<int> positions, RopeCache cache, int numHeads, int numKvHeads,
                               int headDim, RopeStyle style = RopeStyle.NeoX, int qStride = 0, int kStride = 0,
                               CpuContext? context = null) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(cache);
        RopeCore(q, k, positions, IndexType.IndexI32, cache.CosSin, cache.RotaryDim, cache.MaxPosition, numHeads, numKvHeads, headDim,
                 style, qStride, kStride, context, nameof(cache));
    }

    /// <summary>Rotary position embedding with 64-bit positions.</summary>
    /// <inheritdoc cref="Rope{T}(Span{T}, Span{T}, ReadOnlySpan{int}, RopeCache, int, int, int, RopeStyle, int, int, CpuContext?)"/>
    public static void Rope<T>(Span<T> q, Span<T> k, ReadOnlySpan<long> positions, RopeCache cache, int numHeads, int numKvHeads,
                               int headDim, RopeStyle style = RopeStyle.NeoX, int qStride = 0, int kStride = 0,
                               CpuContext? context = null) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(cache);
        RopeCore(q, k, positions, IndexType.IndexI64, cache.CosSin, cache.RotaryDim, cache.MaxPosition, numHeads, numKvHeads, headDim,
                 style, qStride, kStride, context, nameof(cache));
    }

    /// <summary>Rotary position embedding with a cache the caller holds (vLLM's layout, see <see cref="RopeCache"/>).</summary>
    /// <param name="q">Queries, <c>[tokens, qStride]</c>, a token's <paramref name="numHeads"/> heads of <paramref name="headDim"/> first.</param>
    /// <param name="k">Keys, <c>[tokens, kStride]</c>, a token's <paramref name="numKvHeads"/> heads first; empty for queries only.
    /// May be a slice of the same fused qkv buffer as <paramref name="q"/> as long as no head of one is a head of the other.</param>
    /// <param name="positions">The position of each token: <c>[0, cosSinCache.Length / rotaryDim)</c>.</param>
    /// <param name="cosSinCache">The cache, <c>[maxPosition, rotaryDim]</c>: a whole number of rows.</param>
    /// <param name="rotaryDim">Rotated elements per head: positive, even, at most <paramref name="headDim"/>.</param>
    /// <param name="numHeads">Query heads per token.</param>
    /// <param name="numKvHeads">Key heads per token; divides <paramref name="numHeads"/>. Ignored when <paramref name="k"/> is empty.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="style">How elements pair up.</param>
    /// <param name="qStride">Elements between tokens of <paramref name="q"/>; 0 means <c>numHeads * headDim</c>.</param>
    /// <param name="kStride">Elements between tokens of <paramref name="k"/>; 0 means <c>numKvHeads * headDim</c>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void Rope<T>(Span<T> q, Span<T> k, ReadOnlySpan<int> positions, ReadOnlySpan<float> cosSinCache, int rotaryDim,
                               int numHeads, int numKvHeads, int headDim, RopeStyle style = RopeStyle.NeoX, int qStride = 0,
                               int kStride = 0, CpuContext? context = null) where T : unmanaged =>
        RopeCore(q, k, positions, IndexType.IndexI32, cosSinCache, rotaryDim, CacheRows(cosSinCache, rotaryDim), numHeads, numKvHeads,
                 headDim, style, qStride, kStride, context, nameof(cosSinCache));

    /// <summary>Rotary position embedding with 64-bit positions and a cache the caller holds.</summary>
    /// <inheritdoc cref="Rope{T}(Span{T}, Span{T}, ReadOnlySpan{int}, ReadOnlySpan{float}, int, int, int, int, RopeStyle, int, int, CpuContext?)"/>
    public static void Rope<T>(Span<T> q, Span<T> k, ReadOnlySpan<long> positions, ReadOnlySpan<float> cosSinCache, int rotaryDim,
                               int numHeads, int numKvHeads, int headDim, RopeStyle style = RopeStyle.NeoX, int qStride = 0,
                               int kStride = 0, CpuContext? context = null) where T : unmanaged =>
        RopeCore(q, k, positions, IndexType.IndexI64, cosSinCache, rotaryDim, CacheRows(cosSinCache, rotaryDim), numHeads, numKvHeads,
                 headDim, style, qStride, kStride, context, nameof(cosSinCache));

    /// <summary>
    /// Fills <paramref name="destination"/> with the cos/sin cache of <see cref="RopeCache"/>:
    /// row <c>p</c> holds <c>cos(p inv_freq[j]) m</c> for <c>j &lt; rotaryDim/2</c>, then the sines,
    /// with the angle and its cosine and sine in double, rounded once to f32 (accurate to an f32 ulp
    /// for positions up to and beyond 1,000,000). <c>inv_freq</c> and <c>m</c> follow the scaling rule.
    /// </summary>
    /// <param name="destination">At least <c>maxPosition * rotaryDim</c> elements; the first that many are written.</param>
    /// <param name="maxPosition">Rows: positions <c>[0, maxPosition)</c>.</param>
    /// <param name="rotaryDim">Rotated elements per head; positive and even.</param>
    /// <param name="theta">The base (<c>rope_theta</c>): positive and finite.</param>
    /// <param name="scaling">The scaling rule; null means none.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static unsafe void BuildRopeCache(Span<float> destination, int maxPosition, int rotaryDim, double theta = 10000.0,
                                             RopeScaling? scaling = null, CpuContext? context = null)
    {
        CheckRopeCacheShape(maxPosition, rotaryDim, nameof(maxPosition), nameof(rotaryDim));
        if (!(theta > 0) || double.IsPositiveInfinity(theta))
            throw new ArgumentOutOfRangeException(nameof(theta), theta, "Must be positive and finite.");
        if (destination.Length < (long)maxPosition * rotaryDim)
            throw new ArgumentException($"Length {destination.Length} is less than maxPosition x rotaryDim ({(long)maxPosition * rotaryDim}).",
                                        nameof(destination));
        scaling ??= RopeScaling.None;
        CheckScaling(scaling, rotaryDim);
        var p = new RopeCacheParams
        {
            MaxPosition = maxPosition,
            RotDim = rotaryDim,
            Base = theta,
            OriginalMaxPosition = scaling.OriginalMaxPositionEmbeddings,
            Factor = scaling.Factor,
            BetaFast = scaling.BetaFast,
            BetaSlow = scaling.BetaSlow,
            Mscale = scaling.AttentionFactor ?? 0.0,
            LowFreqFactor = scaling.LowFreqFactor,
            HighFreqFactor = scaling.HighFreqFactor,
            Scaling = (Interop.RopeScaling)scaling.RopeType,
        };
        CpuContext ctx = CpuContext.Resolve(context);
        fixed (float* cache = destination)
        {
            p.Cache = cache;
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.RopeCacheBuild(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_rope_cache_build");
        }
    }

    internal static void CheckRopeCacheShape(int maxPosition, int rotaryDim, string maxPositionName, string rotaryDimName)
    {
        if (maxPosition <= 0)
            throw new ArgumentOutOfRangeException(maxPositionName, maxPosition, "Must be positive.");
        if (rotaryDim <= 0 || rotaryDim % 2 != 0)
            throw new ArgumentOutOfRangeException(rotaryDimName, rotaryDim, "Must be positive and even: rotated elements come in pairs.");
        if ((long)maxPosition * rotaryDim > Array.MaxLength)
            throw new ArgumentOutOfRangeException(maxPositionName, maxPosition, $"maxPosition x rotaryDim exceeds {Array.MaxLength} elements.");
    }

    private static void CheckScaling(RopeScaling s, int rotaryDim)
    {
        const string name = "scaling";
        if (!Enum.IsDefined(s.RopeType))
            throw new ArgumentException($"RopeType {(int)s.RopeType} is not a RopeScalingType.", name);
        if (s.RopeType == RopeScalingType.Default)
            return;
        if (!(s.Factor >= 1.0) || double.IsPositiveInfinity(s.Factor))
            throw new ArgumentException($"factor {s.Factor} must be finite and at least 1 for {s.RopeType}.", name);
        if (s.RopeType == RopeScalingType.Linear)
            return;
        if (s.OriginalMaxPositionEmbeddings <= 0)
            throw new ArgumentException($"original_max_position_embeddings {s.OriginalMaxPositionEmbeddings} must be positive for {s.RopeType}.", name);
        if (s.RopeType == RopeScalingType.Dynamic && rotaryDim <= 2)
            throw new ArgumentException($"Dynamic NTK scaling needs rotaryDim > 2 (the exponent is d / (d - 2)); got {rotaryDim}.", name);
        if (s.RopeType == RopeScalingType.Yarn)
        {
            if (!(s.BetaFast > 0) || double.IsPositiveInfinity(s.BetaFast))
                throw new ArgumentException($"beta_fast {s.BetaFast} must be positive and finite.", name);
            if (!(s.BetaSlow > 0) || double.IsPositiveInfinity(s.BetaSlow))
                throw new ArgumentException($"beta_slow {s.BetaSlow} must be positive and finite.", name);
            if (s.AttentionFactor is double a && (!(a > 0) || double.IsPositiveInfinity(a)))
                throw new ArgumentException($"attention_factor {a} must be positive and finite (null: 0.1 ln(factor) + 1).", name);
        }
        if (s.RopeType == RopeScalingType.Llama3)
        {
            if (!(s.LowFreqFactor > 0) || double.IsPositiveInfinity(s.LowFreqFactor))
                throw new ArgumentException($"low_freq_factor {s.LowFreqFactor} must be positive and finite.", name);
            if (!(s.HighFreqFactor >= s.LowFreqFactor) || double.IsPositiveInfinity(s.HighFreqFactor))
                throw new ArgumentException($"high_freq_factor {s.HighFreqFactor} must be finite and at least low_freq_factor ({s.LowFreqFactor}).", name);
        }
    }

    private static int CacheRows(ReadOnlySpan<float> cache, int rotaryDim)
    {
        if (rotaryDim <= 0 || rotaryDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(rotaryDim), rotaryDim, "Must be positive and even: rotated elements come in pairs.");
        if (cache.Length == 0 || cache.Length % rotaryDim != 0)
            throw new ArgumentException($"Length {cache.Length} is not a positive whole number of rows of rotaryDim ({rotaryDim}).",
                                        "cosSinCache");
        return cache.Length / rotaryDim;
    }

    private static unsafe void RopeCore<T, TIndex>(Span<T> q, Span<T> k, ReadOnlySpan<TIndex> positions, IndexType positionType,
                                                   ReadOnlySpan<float> cache, int rotaryDim, int maxPosition, int numHeads,
                                                   int numKvHeads, int headDim, RopeStyle style, int qStride, int kStride,
                                                   CpuContext? context, string cacheName)
        where T : unmanaged where TIndex : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        if (numHeads <= 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, "Must be positive.");
        if (headDim <= 0)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "Must be positive.");
        if (rotaryDim > headDim)
            throw new ArgumentException($"The rotary dimension {rotaryDim} exceeds headDim ({headDim}).", cacheName);
        if (style is not (RopeStyle.NeoX or RopeStyle.GptJ))
            throw new ArgumentOutOfRangeException(nameof(style), style, "Not a RopeStyle.");
        bool hasK = !k.IsEmpty;
        if (hasK)
        {
            if (numKvHeads <= 0)
                throw new ArgumentOutOfRangeException(nameof(numKvHeads), numKvHeads, "Must be positive when k is given.");
            if (numHeads % numKvHeads != 0)
                throw new ArgumentException($"numKvHeads ({numKvHeads}) does not divide numHeads ({numHeads}).", nameof(numKvHeads));
        }
        long qSpan = (long)numHeads * headDim, kSpan = hasK ? (long)numKvHeads * headDim : 0;
        long qStep = ResolveStride(qStride, qSpan, nameof(qStride), "numHeads");
        long kStep = hasK ? ResolveStride(kStride, kSpan, nameof(kStride), "numKvHeads") : 0;
        int tokens = positions.Length;
        if (tokens == 0)
            return;
        CheckRows(q.Length, tokens, qStep, qSpan, nameof(q), nameof(qStride));
        if (hasK)
            CheckRows(k.Length, tokens, kStep, kSpan, nameof(k), nameof(kStride));
        if (positionType == IndexType.IndexI32)
            CheckPositions(MemoryMarshal.Cast<TIndex, int>(positions), maxPosition);
        else
            CheckPositions(MemoryMarshal.Cast<TIndex, long>(positions), maxPosition);
        SpanChecks.NoOverlap<T, float>(q, cache, nameof(q), cacheName);
        if (hasK)
            SpanChecks.NoOverlap<T, float>(k, cache, nameof(k), cacheName);

        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* qPtr = q)
        fixed (T* kPtr = k)
        fixed (TIndex* positionsPtr = positions)
        fixed (float* cachePtr = cache)
        {
            var p = new RopeParams
            {
                Q = qPtr,
                K = hasK ? kPtr : null,
                Positions = positionsPtr,
                CosSinCache = cachePtr,
                Tokens = tokens,
                NumHeads = numHeads,
                NumKvHeads = hasK ? numKvHeads : 0,
                HeadDim = headDim,
                RotDim = rotaryDim,
                MaxPosition = maxPosition,
                QStride = qStep,
                KStride = kStep,
                Style = (Interop.RopeStyle)style,
                PositionType = positionType,
                Dtype = dtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.Rope(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_rope");
        }
    }

    private static long ResolveStride(int stride, long span, string name, string headsName)
    {
        if (stride == 0)
            return span;
        if (stride < span)
            throw new ArgumentOutOfRangeException(name, stride, $"Less than {headsName} x headDim ({span}), the span of a token's heads; 0 means that span.");
        return stride;
    }

    private static void CheckRows(int length, int tokens, long stride, long span, string name, string strideName)
    {
        long needed = (tokens - 1) * stride + span;
        if (length < needed)
            throw new ArgumentException($"Length {length} is less than the {needed} elements of {tokens} tokens {stride} apart ({strideName}).", name);
    }

    private static void CheckPositions(ReadOnlySpan<int> positions, int maxPosition)
    {
        for (int t = 0; t < positions.Length; t++)
            if ((uint)positions[t] >= (uint)maxPosition)
                ThrowPosition(t, positions[t], maxPosition);
    }

    private static void CheckPositions(ReadOnlySpan<long> positions, int maxPosition)
    {
        for (int t = 0; t < positions.Length; t++)
            if ((ulong)positions[t] >= (ulong)maxPosition)
                ThrowPosition(t, positions[t], maxPosition);
    }

    [DoesNotReturn]
    private static void ThrowPosition(int token, long position, int maxPosition) =>
        throw new ArgumentOutOfRangeException("positions", position, $"positions[{token}] = {position} is outside the cache [0, {maxPosition}).");
}
