using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// Attention as a C# developer writes it without thinking about speed: per query row and head, the
/// scores of every visible key materialised in an f32 array (dot products in f32 scalar loops), their
/// maximum, the exponentials and their sum, then the weighted sum of the values, on the calling thread
/// only; a decode reads the paged cache through the block table. Elements are read and written through
/// <see cref="IElementCodec{T}"/>, as the other naive peers do.
/// A full call would take minutes at 2048 tokens, so the peer runs a slice of it and says so
/// (<see cref="IBenchPeer.WorkFraction"/>): a prefill computes query head 0 of every token (1/32 of
/// the FLOPs: each head does the same causal work), a decode sequence 0 of the batch (1/8 of the
/// K and V bytes, all heads). Its time is scaled to the whole call.
/// </summary>
public static class NaiveAttentionPeer
{
    public static IAttentionPeer Create(AttentionInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveAttentionPeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveAttentionPeer<Half, F16Codec>(inputs),
        _ => new NaiveAttentionPeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveAttentionPeer<T, TCodec> : IAttentionPeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly AttentionInputs _inputs;
    private readonly NativeBuffer _q, _out;
    private readonly NativeBuffer? _k, _v;
    private readonly float[] _scores, _sum;

    public NaiveAttentionPeer(AttentionInputs inputs)
    {
        var c = inputs.Case;
        if (c.Decode && TCodec.Dtype != BenchDtype.Bf16)
            throw new NotSupportedException("the decode cases keep a bf16 cache");
        _inputs = inputs;
        _q = Elements.ToBuffer(inputs.Q.As<float>(), c.QueryElements, TCodec.Dtype);
        _out = new NativeBuffer(c.QueryElements * sizeof(T));
        _out.Touch();
        if (!c.Decode)
        {
            _k = Elements.ToBuffer(inputs.K!.As<float>(), c.KvElements, TCodec.Dtype);
            _v = Elements.ToBuffer(inputs.V!.As<float>(), c.KvElements, TCodec.Dtype);
        }
        _scores = new float[c.Context];
        _sum = new float[AttentionCase.HeadDim];
    }

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public void* Output => _out.Pointer;

    /// <summary>Prefill: query head 0 (of 32); decode: sequence 0 (of the batch).</summary>
    public double WorkFraction => _inputs.Case.WorkFractionFor(PeerNames.Naive);

    public bool Computes(long token, long head) => _inputs.Case.Decode ? token == 0 : head == 0;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        var c = _inputs.Case;
        const int dim = (int)AttentionCase.HeadDim;
        const long group = AttentionCase.QHeads / AttentionCase.KvHeads;
        long tokens = c.Decode ? 1 : c.TotalQueries, heads = c.Decode ? AttentionCase.QHeads : 1;
        for (long t = 0; t < tokens; t++)
        {
            long position = t % c.QueryTokens + c.Context - c.QueryTokens;
            for (long h = 0; h < heads; h++)
            {
                T* q = _q.As<T>() + (t * AttentionCase.QHeads + h) * dim;
                long kvOffset = h / group * dim;
                float max = float.NegativeInfinity;
                for (long j = 0; j <= position; j++)
                {
                    T* k = Row(_k, _inputs.KeyCache, t, j) + kvOffset;
                    float dot = 0;
                    for (int d = 0; d < dim; d++)
                        dot += TCodec.Decode(q[d]) * TCodec.Decode(k[d]);
                    _scores[j] = dot * AttentionCase.Scale;
                    max = MathF.Max(max, _scores[j]);
                }
                float total = 0;
                Array.Clear(_sum);
                for (long j = 0; j <= position; j++)
                {
                    float p = MathF.Exp(_scores[j] - max);
                    total += p;
                    T* v = Row(_v, _inputs.ValueCache, t, j) + kvOffset;
                    for (int d = 0; d < dim; d++)
                        _sum[d] += p * TCodec.Decode(v[d]);
                }
                T* o = _out.As<T>() + (t * AttentionCase.QHeads + h) * dim;
                for (int d = 0; d < dim; d++)
                    o[d] = TCodec.Encode(_sum[d] / total);
            }
        }
    }

    /// <summary>Key or value row j (8 heads) of query token t's sequence: contiguous, or through the block table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private T* Row(NativeBuffer? contiguous, NativeBuffer? cache, long t, long j) => contiguous is not null
        ? contiguous.As<T>() + (t / _inputs.Case.QueryTokens * _inputs.Case.Context + j) * AttentionCase.KvHeads * AttentionCase.HeadDim
        : (T*)_inputs.CacheRow(cache!, t / _inputs.Case.QueryTokens, j);

    public void Reset() { }

    public void Dispose()
    {
        _q.Dispose();
        _out.Dispose();
        _k?.Dispose();
        _v?.Dispose();
    }
}
