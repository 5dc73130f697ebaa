namespace LlmKernels;

// RoPE on a CUDA device. The cache is device memory too: upload a RopeCache's CosSin once (new DeviceBuffer<float>(cache.CosSin)).
public static partial class Kernels
{
    /// <summary>
    /// Rotary position embedding in place on a CUDA device (<c>lk_cuda_rope</c>): what
    /// <see cref="Rope{T}(Span{T}, Span{T}, ReadOnlySpan{int}, ReadOnlySpan{float}, int, int, int, int, RopeStyle, int, int, CpuContext?)"/>
    /// computes, with the cos/sin cache on the device (a <see cref="RopeCache"/>'s <see cref="RopeCache.CosSin"/> uploaded once).
    /// The positions are device memory, so they are checked by the kernel as it reads them: a token whose position is outside the
    /// cache is left as it is, and the first such position is reported by the next <see cref="CudaStream.Synchronize"/> as an
    /// <see cref="ArgumentException"/> naming <c>positions</c>.
    /// </summary>
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
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A size, length, stride or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Rope<T>(DeviceSpan<T> q, DeviceSpan<T> k, DeviceSpan<int> positions, DeviceSpan<float> cosSinCache, int rotaryDim,
                               int numHeads, int numKvHeads, int headDim, RopeStyle style = RopeStyle.NeoX, int qStride = 0,
                               int kStride = 0, CudaStream? stream = null) where T : unmanaged =>
        CudaRope(q, k, positions, TensorDataType.Int32, cosSinCache, rotaryDim, numHeads, numKvHeads, headDim, style, qStride, kStride,
                 stream);

    /// <summary>Rotary position embedding on a CUDA device with 64-bit positions.</summary>
    /// <inheritdoc cref="Rope{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{int}, DeviceSpan{float}, int, int, int, int, RopeStyle, int, int, CudaStream?)"/>
    public static void Rope<T>(DeviceSpan<T> q, DeviceSpan<T> k, DeviceSpan<long> positions, DeviceSpan<float> cosSinCache, int rotaryDim,
                               int numHeads, int numKvHeads, int headDim, RopeStyle style = RopeStyle.NeoX, int qStride = 0,
                               int kStride = 0, CudaStream? stream = null) where T : unmanaged =>
        CudaRope(q, k, positions, TensorDataType.Int64, cosSinCache, rotaryDim, numHeads, numKvHeads, headDim, style, qStride, kStride,
                 stream);

    /// <summary>RopeCore's checks (but the positions', which the kernel makes) over device views, then the raw call.</summary>
    private static void CudaRope<T, TIndex>(DeviceSpan<T> q, DeviceSpan<T> k, DeviceSpan<TIndex> positions, TensorDataType positionType,
                                            DeviceSpan<float> cosSinCache, int rotaryDim, int numHeads, int numKvHeads, int headDim,
                                            RopeStyle style, int qStride, int kStride, CudaStream? stream)
        where T : unmanaged where TIndex : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        if (rotaryDim <= 0 || rotaryDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(rotaryDim), rotaryDim, "Must be positive and even: rotated elements come in pairs.");
        if (cosSinCache.Length == 0 || cosSinCache.Length % rotaryDim != 0)
            throw new ArgumentException($"Length {cosSinCache.Length} is not a positive whole number of rows of rotaryDim ({rotaryDim}).",
                                        nameof(cosSinCache));
        long maxPosition = cosSinCache.Length / rotaryDim;
        if (numHeads <= 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, "Must be positive.");
        if (headDim <= 0)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "Must be positive.");
        if (rotaryDim > headDim)
            throw new ArgumentException($"The rotary dimension {rotaryDim} exceeds headDim ({headDim}).", nameof(cosSinCache));
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
        long tokens = positions.Length;
        SpanChecks.TokenRows(q.Length, tokens, qStep, qSpan, nameof(q), nameof(qStride));
        if (hasK)
            SpanChecks.TokenRows(k.Length, tokens, kStep, kSpan, nameof(k), nameof(kStride));

        using var call = new DeviceCall(stream);
        DeviceRange qr = call.Range(q, nameof(q)), kr = call.Range(k, nameof(k)), cr = call.Range(cosSinCache, nameof(cosSinCache));
        nint positionsAddress = call.Address(positions, nameof(positions));
        DeviceChecks.NoOverlap(qr, cr, nameof(q), nameof(cosSinCache));
        DeviceChecks.NoOverlap(kr, cr, nameof(k), nameof(cosSinCache));
        if (tokens == 0)
            return;
        CudaKernels.Rope(qr.Address, kr.Address, positionsAddress, positionType, cr.Address, rotaryDim, maxPosition, tokens, numHeads,
                         hasK ? numKvHeads : 0, headDim, dataType, style, qStep, kStep, call.Stream);
    }
}
