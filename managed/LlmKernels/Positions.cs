using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// Position encodings other than RoPE, computed once per model or sequence length: ALiBi slopes,
/// the sinusoidal table of the original Transformer, and T5's relative position buckets with the
/// additive attention bias <c>[numHeads, queryLength, keyLength]</c> built from them.
/// </summary>
public static class Positions
{
    /// <summary>
    /// ALiBi slopes (Press et al.; HF's <c>build_alibi_tensor</c>, vLLM's <c>_get_alibi_slopes</c>):
    /// for <c>n</c> the largest power of two not above the head count, <c>2^(-8 (i+1) / n)</c> for
    /// <c>i &lt; n</c>, then for the remaining heads <c>2^(-4 (2i+1) / n)</c>. 8 heads: 1/2 .. 1/256.
    /// </summary>
    /// <param name="destination">One slope per head; its length is the head count (positive).</param>
    public static unsafe void AlibiSlopes(Span<float> destination)
    {
        if (destination.IsEmpty)
            throw new ArgumentException("At least one head is needed.", nameof(destination));
        fixed (float* slopes = destination)
            NativeStatus.ThrowIfFailed(NativeMethods.AlibiSlopes(destination.Length, slopes), "lk_alibi_slopes");
    }

    /// <summary>ALiBi slopes for <paramref name="numHeads"/> heads.</summary>
    /// <param name="numHeads">Positive.</param>
    /// <returns>The slopes, one per head.</returns>
    public static float[] AlibiSlopes(int numHeads)
    {
        if (numHeads <= 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, "Must be positive.");
        var slopes = new float[numHeads];
        AlibiSlopes(slopes);
        return slopes;
    }

    /// <summary>
    /// The sinusoidal position table of "Attention Is All You Need", rows of <paramref name="dim"/>:
    /// <c>table[p, 2i] = sin(p / theta^(2i/dim))</c>, <c>table[p, 2i+1] = cos(...)</c>, in double,
    /// rounded once.
    /// </summary>
    /// <param name="destination">A whole number of rows of <paramref name="dim"/>, one per position from 0.</param>
    /// <param name="dim">Elements per position; positive and even.</param>
    /// <param name="theta">The base: 10000 in the paper; positive and finite.</param>
    public static unsafe void SinusoidalPositions(Span<float> destination, int dim, double theta = 10000.0)
    {
        if (dim <= 0 || dim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, "Must be positive and even.");
        if (!(theta > 0) || double.IsPositiveInfinity(theta))
            throw new ArgumentOutOfRangeException(nameof(theta), theta, "Must be positive and finite.");
        if (destination.Length % dim != 0)
            throw new ArgumentException($"Length {destination.Length} is not a whole number of rows of dim ({dim}).", nameof(destination));
        fixed (float* table = destination)
            NativeStatus.ThrowIfFailed(NativeMethods.SinusoidalPositions(table, destination.Length / dim, dim, theta),
                                       "lk_sinusoidal_positions");
    }

    /// <summary>The sinusoidal table for positions <c>[0, numPositions)</c>.</summary>
    /// <param name="numPositions">Rows; non-negative.</param>
    /// <param name="dim">Elements per position; positive and even.</param>
    /// <param name="theta">The base: 10000 in the paper.</param>
    /// <returns>The table, <c>[numPositions, dim]</c>.</returns>
    public static float[] SinusoidalPositions(int numPositions, int dim, double theta = 10000.0)
    {
        if (numPositions < 0)
            throw new ArgumentOutOfRangeException(nameof(numPositions), numPositions, "Must not be negative.");
        if (dim <= 0 || dim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, "Must be positive and even.");
        var table = new float[checked(numPositions * dim)];
        SinusoidalPositions(table, dim, theta);
        return table;
    }

    /// <summary>
    /// T5's relative position buckets (HF's <c>T5Attention._relative_position_bucket</c>, in its f32
    /// arithmetic): <c>destination[i, j]</c> buckets the distance <c>j - (i + queryOffset)</c>.
    /// Bidirectional (encoder): half the buckets per direction; causal (decoder): keys after the query
    /// share bucket 0. Within each, the first half are exact distances, the rest logarithmic up to
    /// <paramref name="maxDistance"/>.
    /// </summary>
    /// <param name="destination"><c>[queryLength, keyLength]</c>.</param>
    /// <param name="queryLength">Queries; non-negative.</param>
    /// <param name="keyLength">Keys; non-negative.</param>
    /// <param name="bidirectional">True for the encoder, false for the causal decoder.</param>
    /// <param name="numBuckets">32 in T5.</param>
    /// <param name="maxDistance">128 in T5.</param>
    /// <param name="queryOffset">The position of query 0 among the keys: <c>keyLength - queryLength</c> when decoding with a cache.</param>
    public static unsafe void T5RelativePositionBuckets(Span<int> destination, int queryLength, int keyLength, bool bidirectional,
                                                        int numBuckets = 32, int maxDistance = 128, int queryOffset = 0)
    {
        CheckT5(queryLength, keyLength, bidirectional, numBuckets, maxDistance);
        long cells = (long)queryLength * keyLength;
        if (destination.Length != cells)
            throw new ArgumentException($"Length {destination.Length} differs from queryLength x keyLength ({cells}).", nameof(destination));
        if (cells == 0)
            return;
        fixed (int* buckets = destination)
        {
            var p = new T5BiasParams
            {
                Buckets = buckets, QLen = queryLength, KLen = keyLength, NumBuckets = numBuckets, MaxDistance = maxDistance,
                QueryOffset = queryOffset, Bidirectional = bidirectional ? 1 : 0,
            };
            NativeStatus.ThrowIfFailed(NativeMethods.T5RelativePositionBias(&p), "lk_t5_relative_position_bias");
        }
    }

    /// <summary>
    /// T5's additive attention bias: <c>destination[h, i, j] = table[bucket(i, j), h]</c>, with the
    /// buckets of <see cref="T5RelativePositionBuckets"/>; the <c>[numHeads, queryLength, keyLength]</c>
    /// layout the attention kernel accepts as a per-head bias.
    /// </summary>
    /// <param name="table">HF's <c>relative_attention_bias.weight</c>, <c>[numBuckets, numHeads]</c>.</param>
    /// <param name="destination"><c>[numHeads, queryLength, keyLength]</c>.</param>
    /// <param name="queryLength">Queries; non-negative.</param>
    /// <param name="keyLength">Keys; non-negative.</param>
    /// <param name="numHeads">Heads; positive.</param>
    /// <param name="bidirectional">True for the encoder, false for the causal decoder.</param>
    /// <param name="numBuckets">32 in T5.</param>
    /// <param name="maxDistance">128 in T5.</param>
    /// <param name="queryOffset">The position of query 0 among the keys.</param>
    public static unsafe void T5RelativePositionBias(ReadOnlySpan<float> table, Span<float> destination, int queryLength, int keyLength,
                                                     int numHeads, bool bidirectional, int numBuckets = 32, int maxDistance = 128,
                                                     int queryOffset = 0)
    {
        CheckT5(queryLength, keyLength, bidirectional, numBuckets, maxDistance);
        if (numHeads <= 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, "Must be positive.");
        if (table.Length != (long)numBuckets * numHeads)
            throw new ArgumentException($"Length {table.Length} differs from numBuckets x numHeads ({(long)numBuckets * numHeads}).", nameof(table));
        long size = (long)numHeads * queryLength * keyLength;
        if (destination.Length != size)
            throw new ArgumentException($"Length {destination.Length} differs from numHeads x queryLength x keyLength ({size}).", nameof(destination));
        SpanChecks.NoOverlap<float, float>(destination, table, nameof(destination), nameof(table));
        if (size == 0)
            return;
        fixed (float* tablePtr = table)
        fixed (float* bias = destination)
        {
            var p = new T5BiasParams
            {
                Table = tablePtr, Bias = bias, QLen = queryLength, KLen = keyLength, NumHeads = numHeads, NumBuckets = numBuckets,
                MaxDistance = maxDistance, QueryOffset = queryOffset, Bidirectional = bidirectional ? 1 : 0,
            };
            NativeStatus.ThrowIfFailed(NativeMethods.T5RelativePositionBias(&p), "lk_t5_relative_position_bias");
        }
    }

    private static void CheckT5(int queryLength, int keyLength, bool bidirectional, int numBuckets, int maxDistance)
    {
        if (queryLength < 0)
            throw new ArgumentOutOfRangeException(nameof(queryLength), queryLength, "Must not be negative.");
        if (keyLength < 0)
            throw new ArgumentOutOfRangeException(nameof(keyLength), keyLength, "Must not be negative.");
        int minBuckets = bidirectional ? 4 : 2;
        if (numBuckets < minBuckets)
            throw new ArgumentOutOfRangeException(nameof(numBuckets), numBuckets,
                                                  $"Must be at least {minBuckets} ({(bidirectional ? "half per direction, " : "")}at least one exact bucket).");
        int maxExact = (bidirectional ? numBuckets / 2 : numBuckets) / 2;
        if (maxDistance <= maxExact)
            throw new ArgumentOutOfRangeException(nameof(maxDistance), maxDistance, $"Must exceed the exact range ({maxExact}).");
    }
}
