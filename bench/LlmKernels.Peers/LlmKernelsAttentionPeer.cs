namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels' attention through the public managed API, on a context with the benchmark's thread
/// count: <see cref="O:LlmKernels.Attention.Forward"/> (causal, contiguous q, k, v) for a prefill,
/// <see cref="O:LlmKernels.Attention.ForwardPaged"/> over the workload's bf16 paged cache and shuffled block
/// table for a decode. Spans over the native buffers are made inside the call: nothing allocates.
/// </summary>
public sealed unsafe class LlmKernelsAttentionPeer : IAttentionPeer
{
    private readonly AttentionInputs _inputs;
    private readonly CpuContext _context;
    private readonly AttentionOptions _options = new() { Causal = true, Scale = AttentionCase.Scale };
    private readonly NativeBuffer _q, _out, _cuSeqlensQ;
    private readonly NativeBuffer? _k, _v, _cuSeqlensK;

    public LlmKernelsAttentionPeer(AttentionInputs inputs, BenchDtype dtype, CpuContext context)
    {
        var c = inputs.Case;
        if (c.Decode && dtype != BenchDtype.Bf16)
            throw new NotSupportedException("the decode cases keep a bf16 cache");
        _inputs = inputs;
        _context = context;
        Dtype = dtype;
        _q = Elements.ToBuffer(inputs.Q.As<float>(), c.QueryElements, dtype);
        _out = new NativeBuffer(c.QueryElements * dtype.Size());
        _out.Touch();
        _cuSeqlensQ = Offsets(c.Batch, c.QueryTokens);
        if (!c.Decode)
        {
            _k = Elements.ToBuffer(inputs.K!.As<float>(), c.KvElements, dtype);
            _v = Elements.ToBuffer(inputs.V!.As<float>(), c.KvElements, dtype);
            _cuSeqlensK = Offsets(c.Batch, c.Context);
        }
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype { get; }
    public int Threads => _context.ThreadCount;
    public void* Output => _out.Pointer;

    public void Run()
    {
        switch (Dtype)
        {
            case BenchDtype.F32: Run<float>(); break;
            case BenchDtype.F16: Run<Half>(); break;
            default: Run<BFloat16>(); break;
        }
    }

    private void Run<T>() where T : unmanaged
    {
        var c = _inputs.Case;
        int queries = (int)c.QueryElements, batch = (int)c.Batch;
        var q = new ReadOnlySpan<T>(_q.Pointer, queries);
        var output = new Span<T>(_out.Pointer, queries);
        var cuSeqlensQ = new ReadOnlySpan<int>(_cuSeqlensQ.Pointer, batch + 1);
        if (!c.Decode)
        {
            int kv = (int)c.KvElements;
            Attention.Forward(q, new ReadOnlySpan<T>(_k!.Pointer, kv), new ReadOnlySpan<T>(_v!.Pointer, kv), output, cuSeqlensQ,
                              new ReadOnlySpan<int>(_cuSeqlensK!.Pointer, batch + 1), (int)AttentionCase.QHeads,
                              (int)AttentionCase.KvHeads, (int)AttentionCase.HeadDim, _options, context: _context);
            return;
        }
        var layout = _inputs.Layout!.Value;
        int cache = (int)layout.CacheElements;
        Attention.ForwardPaged(q, new ReadOnlySpan<T>(_inputs.KeyCache!.Pointer, cache), new ReadOnlySpan<T>(_inputs.ValueCache!.Pointer, cache),
                               layout, new ReadOnlySpan<int>(_inputs.BlockTables!.Pointer, batch * _inputs.MaxBlocksPerSeq),
                               _inputs.MaxBlocksPerSeq, new ReadOnlySpan<int>(_inputs.SeqLens!.Pointer, batch), output, cuSeqlensQ,
                               (int)AttentionCase.QHeads, _options, context: _context);
    }

    /// <summary>cu_seqlens of <paramref name="batch"/> sequences of <paramref name="length"/> tokens each.</summary>
    private static NativeBuffer Offsets(long batch, long length)
    {
        var offsets = new NativeBuffer((batch + 1) * sizeof(int));
        for (long s = 0; s <= batch; s++)
            offsets.As<int>()[s] = (int)(s * length);
        return offsets;
    }

    public void Reset() { } // inputs are only read

    public void Dispose()
    {
        _q.Dispose();
        _out.Dispose();
        _cuSeqlensQ.Dispose();
        _k?.Dispose();
        _v?.Dispose();
        _cuSeqlensK?.Dispose();
    }
}
