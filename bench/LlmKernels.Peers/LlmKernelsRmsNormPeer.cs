namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels itself, through the public managed API (<see cref="Kernels.RmsNorm{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>
/// and <see cref="Kernels.FusedAddRmsNorm{T}(ReadOnlySpan{T}, Span{T}, ReadOnlySpan{T}, Span{T}, float, bool, CpuContext?)"/>)
/// on a context with the benchmark's thread count: what a user's call costs, argument checks included.
/// </summary>
public sealed unsafe class LlmKernelsRmsNormPeer : INormPeer
{
    private readonly PeerBuffers _buffers;
    private readonly CpuContext _context;
    private readonly int _elements;
    private readonly int _hidden;

    public LlmKernelsRmsNormPeer(RmsNormInputs inputs, BenchDtype dtype, CpuContext context)
    {
        _buffers = new PeerBuffers(inputs, dtype);
        _context = context;
        _elements = checked((int)inputs.Case.Elements);
        _hidden = checked((int)inputs.Case.Hidden);
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => _context.ThreadCount;
    public void* Y => _buffers.Y.Pointer;
    public void* ResidualOut => _buffers.Residual is { } r ? r.Pointer : null;

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
        var x = new ReadOnlySpan<T>(_buffers.X.Pointer, _elements);
        var w = new ReadOnlySpan<T>(_buffers.Weight.Pointer, _hidden);
        var y = new Span<T>(_buffers.Y.Pointer, _elements);
        if (_buffers.Residual is { } residual)
            Kernels.FusedAddRmsNorm(x, new Span<T>(residual.Pointer, _elements), w, y, RmsNormCase.Epsilon, context: _context);
        else
            Kernels.RmsNorm(x, w, y, RmsNormCase.Epsilon, context: _context);
    }

    public void Reset() => _buffers.Reset();

    public void Dispose() => _buffers.Dispose();
}
