namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels' permute and combine through the public managed API, <c>Moe.Permute&lt;T&gt;</c> and
/// <c>Moe.Combine&lt;T&gt;</c>, on a context with the benchmark's thread count. Its plan is its own,
/// <c>Moe.Routing</c> of the case's expert ids, built once at setup (untimed: a counting sort of a few
/// thousand slots); the check compares its output with the reference plan's, so it checks the plan too. Spans
/// over the native buffers are made inside the call: nothing allocates.
/// </summary>
public sealed unsafe class LlmKernelsMoePermutePeer : IMoePermutePeer
{
    private readonly MoePermuteBuffers _buffers;
    private readonly CpuContext _context;
    private readonly bool _combine;
    private readonly int _tokens, _topK, _hidden, _rows;

    public LlmKernelsMoePermutePeer(MoePermuteInputs inputs, BenchDtype dtype, CpuContext context)
    {
        var c = inputs.Case;
        _tokens = checked((int)c.Tokens);
        _topK = c.TopK;
        _hidden = checked((int)c.Hidden);
        _combine = c.Combine;
        var plan = MoeRoutingPlan.LlmKernels(inputs.ExpertIds, _tokens, _topK, checked((int)c.Experts), context);
        _rows = plan.ExpertOffsets[^1];
        _buffers = new MoePermuteBuffers(inputs, dtype, plan);
        _context = context;
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => _context.ThreadCount;
    public void* Out => _buffers.Output.Pointer;

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
        int slots = _tokens * _topK;
        if (_combine)
            Moe.Combine(new ReadOnlySpan<T>(_buffers.Source.Pointer, _rows * _hidden), new ReadOnlySpan<float>(_buffers.Weights!.Pointer, slots),
                        new ReadOnlySpan<int>(_buffers.Index.Pointer, slots), new Span<T>(_buffers.Output.Pointer, _tokens * _hidden),
                        _tokens, _topK, _hidden, context: _context);
        else
            Moe.Permute(new ReadOnlySpan<T>(_buffers.Source.Pointer, _tokens * _hidden), new Span<T>(_buffers.Output.Pointer, _rows * _hidden),
                        new ReadOnlySpan<int>(_buffers.Index.Pointer, _rows), _tokens, _topK, _hidden, context: _context);
    }

    public void Reset() { } // inputs are only read

    public void Dispose() => _buffers.Dispose();
}
