namespace LlmKernels.Peers;

/// <summary>
/// Attention in float64 for the queries a check visits: every decode query, or 128 prefill rows
/// spread over the sequence (first and last included), all 32 heads. Per query at key position p
/// (the last Sq of the sequence's Sk keys: p = i + Sk - Sq, causal), scores q.k * scale over keys
/// 0..p, a softmax with the maximum subtracted, and the weighted sum of values, all in double from
/// the inputs every peer starts from. Computed once per workload, on every core.
/// </summary>
public sealed class AttentionReference
{
    private readonly double[] _values;

    private AttentionReference(long[] queries, double[] values)
    {
        Queries = queries;
        _values = values;
    }

    /// <summary>The global query tokens checked, in order.</summary>
    public long[] Queries { get; }

    /// <summary>Element <paramref name="d"/> of head <paramref name="head"/> of the <paramref name="index"/>-th checked query.</summary>
    public double At(int index, long head, long d) => _values[(index * AttentionCase.QHeads + head) * AttentionCase.HeadDim + d];

    public static AttentionReference Compute(AttentionInputs inputs)
    {
        var c = inputs.Case;
        const int dim = (int)AttentionCase.HeadDim;
        const long group = AttentionCase.QHeads / AttentionCase.KvHeads;
        long[] queries = [.. ErrorTracker.SpreadRows(c.TotalQueries, c.Decode ? c.TotalQueries : 128)];
        var values = new double[queries.Length * AttentionCase.QHeads * dim];
        double scale = AttentionCase.Scale;
        Parallel.For(0, c.Batch * AttentionCase.KvHeads, pair =>
        {
            long seq = pair / AttentionCase.KvHeads, kvHead = pair % AttentionCase.KvHeads;
            var keys = new float[c.Context * dim];
            var vals = new float[c.Context * dim];
            for (long j = 0; j < c.Context; j++)
            {
                inputs.KeyHead(seq, j, kvHead, keys.AsSpan((int)(j * dim), dim));
                inputs.ValueHead(seq, j, kvHead, vals.AsSpan((int)(j * dim), dim));
            }
            var scores = new double[c.Context];
            var sum = new double[dim];
            for (int index = 0; index < queries.Length; index++)
            {
                long token = queries[index];
                if (token / c.QueryTokens != seq)
                    continue;
                long position = token % c.QueryTokens + c.Context - c.QueryTokens;
                for (long head = kvHead * group; head < (kvHead + 1) * group; head++)
                {
                    unsafe
                    {
                        float* q = inputs.Q.As<float>() + (token * AttentionCase.QHeads + head) * dim;
                        double max = double.NegativeInfinity;
                        for (long j = 0; j <= position; j++)
                        {
                            double dot = 0;
                            for (int d = 0; d < dim; d++)
                                dot += (double)q[d] * keys[j * dim + d];
                            scores[j] = dot * scale;
                            max = Math.Max(max, scores[j]);
                        }
                        double total = 0;
                        Array.Clear(sum);
                        for (long j = 0; j <= position; j++)
                        {
                            double p = Math.Exp(scores[j] - max);
                            total += p;
                            for (int d = 0; d < dim; d++)
                                sum[d] += p * vals[j * dim + d];
                        }
                        for (int d = 0; d < dim; d++)
                            values[(index * AttentionCase.QHeads + head) * dim + d] = sum[d] / total;
                    }
                }
            }
        });
        return new AttentionReference(queries, values);
    }
}
