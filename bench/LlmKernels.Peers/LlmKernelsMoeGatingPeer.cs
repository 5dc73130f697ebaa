namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels' gating through the public managed API,
/// <see cref="Moe.Gating{T}(ReadOnlySpan{T}, Span{float}, Span{int}, int, int, int, MoeGatingOptions?, ReadOnlySpan{float}, int, CpuContext?)"/>,
/// with the scheme's options (built once) and the correction bias where the scheme has one, on a context with the
/// benchmark's thread count. Spans over the native buffers are made inside the call: nothing allocates.
/// </summary>
public sealed unsafe class LlmKernelsMoeGatingPeer : IMoeGatingPeer
{
    private readonly MoeGatingBuffers _buffers;
    private readonly CpuContext _context;
    private readonly MoeGatingOptions _options;
    private readonly int _tokens, _experts, _topK;

    public LlmKernelsMoeGatingPeer(MoeGatingInputs inputs, BenchDtype dtype, CpuContext context)
    {
        var c = inputs.Case;
        _buffers = new MoeGatingBuffers(inputs, dtype);
        _context = context;
        _options = c.Scheme.Options;
        _tokens = checked((int)c.Tokens);
        _experts = checked((int)c.Experts);
        _topK = c.TopK;
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => _context.ThreadCount;
    public int* Ids => _buffers.Ids.As<int>();
    public long IdsStride => _topK;
    public float* Weights => _buffers.Weights.As<float>();

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
        int outputs = _tokens * _topK;
        var bias = _buffers.Bias is { } b ? new ReadOnlySpan<float>(b.Pointer, _experts) : default;
        Moe.Gating(new ReadOnlySpan<T>(_buffers.Logits.Pointer, _tokens * _experts), new Span<float>(_buffers.Weights.Pointer, outputs),
                   new Span<int>(_buffers.Ids.Pointer, outputs), _tokens, _experts, _topK, _options, bias, context: _context);
    }

    public void Reset() { } // inputs are only read

    public void Dispose() => _buffers.Dispose();
}
