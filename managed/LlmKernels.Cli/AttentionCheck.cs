namespace LlmKernels.Cli;

/// <summary>
/// <c>llmk check</c> rows for attention and the paged KV cache, per ISA and dtype:
/// <list type="bullet">
/// <item><c>attention</c>: <see cref="O:LlmKernels.Attention.Forward"/> on varlen batches (GQA, MQA, MHA; causal,
/// sliding window and full; ragged head dims) against float64, with a naive same-precision attention
/// (f32 scores, softmax and sums, one rounding) as the yardstick;</item>
/// <item><c>attention_paged</c>: <see cref="O:LlmKernels.Attention.ForwardPaged"/> over the same keys written into a
/// paged cache with a shuffled block table: bit for bit the contiguous result (the API's promise), so
/// its error is its difference from <see cref="O:LlmKernels.Attention.Forward"/> and must be 0;</item>
/// <item><c>kv_cache</c>: <see cref="KvCache.Write{T}"/> then <see cref="KvCache.Gather{T}"/> gives the
/// keys and values back bit for bit.</item>
/// </list>
/// </summary>
internal static class AttentionCheck
{
    private const int BlockSize = 16;

    private static readonly (int Heads, int KvHeads, int HeadDim, int[] SeqQ, int[] SeqK, bool Causal, int WindowLeft)[] s_shapes =
    [
        (8, 2, 64, [5, 1, 17], [5, 40, 17], true, -1),
        (4, 4, 128, [33], [33], true, -1),
        (6, 1, 80, [1, 1], [100, 7], false, -1),
        (4, 2, 17, [20], [50], true, 8),
        (32, 8, 128, [1, 1], [300, 77], true, -1),
    ];

    public static int Run(TextWriter output, CpuContext context)
    {
        int failures = 0;
        failures += Rows<float>(output, context);
        failures += Rows<Half>(output, context);
        failures += Rows<BFloat16>(output, context);
        return failures;
    }

    private static int Rows<T>(TextWriter output, CpuContext context) where T : unmanaged
    {
        var attention = new ErrorStats();
        var paged = new ErrorStats();
        var cache = new ErrorStats();
        var random = new Random(2718);
        foreach (var shape in s_shapes)
        {
            var (a, p, c) = Compare<T>(context, random, shape);
            attention.Add(a);
            paged.Add(p);
            cache.Add(c);
        }
        int failures = 0;
        foreach (var (name, stats) in new[] { ("attention", attention), ("attention_paged", paged), ("kv_cache", cache) })
        {
            failures += stats.Passes ? 0 : 1;
            output.WriteLine($"{name,-20} {context.Isa.ToString().ToLowerInvariant(),-7} {Elements.Name<T>(),-5} {stats.Cases,5} " +
                             $"{stats.MaxError,10:E2} {stats.MaxNaiveError,10:E2} {(stats.Passes ? "ok" : "FAIL"),7}");
        }
        return failures;
    }

    private static (ErrorStats Attention, ErrorStats Paged, ErrorStats Cache) Compare<T>(
        CpuContext context, Random random,
        (int Heads, int KvHeads, int HeadDim, int[] SeqQ, int[] SeqK, bool Causal, int WindowLeft) shape) where T : unmanaged
    {
        var (heads, kvHeads, headDim, seqQ, seqK, causal, windowLeft) = shape;
        int seqs = seqQ.Length, totalQ = seqQ.Sum(), totalK = seqK.Sum();
        int qRow = heads * headDim, kvRow = kvHeads * headDim;
        T[] Random(int n)
        {
            var values = new T[n];
            for (int i = 0; i < n; i++)
                values[i] = Elements.FromFloat<T>(random.NextSingle() * 2 - 1);
            return values;
        }
        T[] q = Random(totalQ * qRow), k = Random(totalK * kvRow), v = Random(totalK * kvRow);
        int[] cuQ = Offsets(seqQ), cuK = Offsets(seqK);
        var options = new AttentionOptions { Causal = causal, WindowLeft = windowLeft };
        var output = new T[totalQ * qRow];
        Attention.Forward<T>(q, k, v, output, cuQ, cuK, heads, kvHeads, headDim, options, context: context);

        // float64 reference and the naive f32 attention, per sequence, query and head.
        double scale = 1.0 / Math.Sqrt(headDim);
        double error = 0, naiveError = 0, maxMagnitude = 0;
        for (int s = 0; s < seqs; s++)
            for (int i = 0; i < seqQ[s]; i++)
            {
                int token = cuQ[s] + i, position = i + seqK[s] - seqQ[s];
                for (int h = 0; h < heads; h++)
                {
                    int kvHead = h / (heads / kvHeads);
                    var visible = Enumerable.Range(0, seqK[s])
                        .Where(j => (!causal || j <= position) && (windowLeft < 0 || j >= position - windowLeft)).ToArray();
                    var scores = new double[visible.Length];
                    var naiveScores = new float[visible.Length];
                    for (int n = 0; n < visible.Length; n++)
                    {
                        int key = (cuK[s] + visible[n]) * kvRow + kvHead * headDim;
                        double dot = 0;
                        float naiveDot = 0;
                        for (int d = 0; d < headDim; d++)
                        {
                            float a = Elements.ToFloat(q[token * qRow + h * headDim + d]), b = Elements.ToFloat(k[key + d]);
                            dot += (double)a * b;
                            naiveDot += a * b;
                        }
                        scores[n] = dot * scale;
                        naiveScores[n] = naiveDot * (float)scale;
                    }
                    double max = scores.Length > 0 ? scores.Max() : 0;
                    float naiveMax = naiveScores.Length > 0 ? naiveScores.Max() : 0;
                    double total = scores.Sum(x => Math.Exp(x - max));
                    float naiveTotal = 0;
                    foreach (float x in naiveScores)
                        naiveTotal += MathF.Exp(x - naiveMax);
                    for (int d = 0; d < headDim; d++)
                    {
                        double sum = 0;
                        float naiveSum = 0;
                        for (int n = 0; n < visible.Length; n++)
                        {
                            float value = Elements.ToFloat(v[(cuK[s] + visible[n]) * kvRow + kvHead * headDim + d]);
                            sum += Math.Exp(scores[n] - max) * value;
                            naiveSum += MathF.Exp(naiveScores[n] - naiveMax) * value;
                        }
                        double reference = visible.Length > 0 ? sum / total : 0;
                        float naive = Elements.Round<T>(visible.Length > 0 ? naiveSum / naiveTotal : 0);
                        double got = Elements.ToFloat(output[token * qRow + h * headDim + d]);
                        error = Math.Max(error, double.IsNaN(got) ? double.PositiveInfinity : Math.Abs(got - reference));
                        naiveError = Math.Max(naiveError, Math.Abs(naive - reference));
                        maxMagnitude = Math.Max(maxMagnitude, Math.Abs(reference));
                    }
                }
            }
        double atol = typeof(T) == typeof(float) ? 1e-6 * maxMagnitude : Math.ScaleB(1.0, Math.ILogB(maxMagnitude) - (typeof(T) == typeof(Half) ? 10 : 7));
        var attention = ErrorStats.One(error, naiveError, atol);

        // The same keys in a paged cache, blocks handed out in a shuffled order, then attention over it and a gather back.
        int maxBlocks = seqK.Max(n => (n + BlockSize - 1) / BlockSize);
        var layout = new PagedKvCacheLayout(seqs * maxBlocks + 3, BlockSize, kvHeads, headDim);
        var blocks = Enumerable.Range(0, layout.NumBlocks).OrderBy(_ => random.Next()).ToArray();
        var blockTables = new int[seqs * maxBlocks];
        Array.Copy(blocks, blockTables, blockTables.Length);
        var slots = new long[totalK];
        for (int s = 0; s < seqs; s++)
            for (int j = 0; j < seqK[s]; j++)
                slots[cuK[s] + j] = (long)blockTables[s * maxBlocks + j / BlockSize] * BlockSize + j % BlockSize;
        var keyCache = new T[layout.CacheElements];
        var valueCache = new T[layout.CacheElements];
        KvCache.Write<T>(keyCache, valueCache, layout, k, v, slots, context: context);
        var pagedOutput = new T[output.Length];
        Attention.ForwardPaged<T>(q, keyCache, valueCache, layout, blockTables, maxBlocks, seqK, pagedOutput, cuQ, heads, options,
                                  context: context);
        double pagedError = 0;
        for (int i = 0; i < output.Length; i++)
            pagedError = Math.Max(pagedError, Difference(Elements.ToFloat(pagedOutput[i]), Elements.ToFloat(output[i])));

        var keyOut = new T[k.Length];
        var valueOut = new T[v.Length];
        KvCache.Gather<T>(keyCache, valueCache, layout, blockTables, maxBlocks, seqK, keyOut, valueOut, context);
        double cacheError = 0;
        for (int i = 0; i < k.Length; i++)
            cacheError = Math.Max(cacheError, Math.Max(Difference(Elements.ToFloat(keyOut[i]), Elements.ToFloat(k[i])),
                                                       Difference(Elements.ToFloat(valueOut[i]), Elements.ToFloat(v[i]))));
        return (attention, ErrorStats.One(pagedError, 0, 0), ErrorStats.One(cacheError, 0, 0));
    }

    /// <summary>|a - b|, NaN as infinite: the bit-for-bit rows allow no difference at all.</summary>
    private static double Difference(float a, float b) => a.Equals(b) ? 0 : double.IsNaN(a - b) ? double.PositiveInfinity : Math.Abs(a - b);

    private static int[] Offsets(int[] lengths)
    {
        var offsets = new int[lengths.Length + 1];
        for (int s = 0; s < lengths.Length; s++)
            offsets[s + 1] = offsets[s] + lengths[s];
        return offsets;
    }
}
