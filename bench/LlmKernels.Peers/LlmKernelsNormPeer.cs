using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels' general norm entry point, <c>lk_norm</c>, through the generated P/Invoke on a context
/// with the benchmark's thread count: LayerNorm (weight and bias in the element type of x), plain
/// or with the pre-norm residual add. Until the kernel lands in the native build, the call throws
/// EntryPointNotFoundException and the row reports LlmKernels as unavailable.
/// </summary>
public sealed unsafe class LlmKernelsNormPeer : INormPeer
{
    private readonly PeerBuffers _buffers;
    private readonly CpuContext _context;
    private readonly bool _layer;

    public LlmKernelsNormPeer(INormInputs inputs, BenchDtype dtype, CpuContext context)
    {
        _buffers = new PeerBuffers(inputs, dtype);
        _context = context;
        _layer = inputs.Layer;
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => _context.ThreadCount;
    public void* Y => _buffers.Y.Pointer;
    public void* ResidualOut => !_buffers.Post && _buffers.Residual is { } r ? r.Pointer : null;

    public void Run()
    {
        var parameters = new NormParams
        {
            X = _buffers.X.Pointer,
            Residual = _buffers.Residual is { } r ? r.Pointer : null,
            Y = _buffers.Y.Pointer,
            Weight = _buffers.Weight.Pointer,
            Bias = _buffers.Bias is { } b ? b.Pointer : null,
            Rows = _buffers.Rows,
            Hidden = _buffers.Hidden,
            Eps = _layer ? LayerNormCase.Epsilon : RmsNormCase.Epsilon,
            Kind = _layer ? NormKind.NormLayer : NormKind.NormRms,
            ResidualMode = _buffers.Residual is null ? NormResidual.None : _buffers.Post ? NormResidual.Post : NormResidual.Pre,
            Alpha = 1f,
            Dtype = LlmKernelsNative.Of(Dtype),
            WeightDtype = LlmKernelsNative.Of(Dtype),
        };
        using var lease = _context.Acquire();
        LlmKernelsNative.ThrowIfFailed(NativeMethods.Norm(lease.Handle, &parameters), "lk_norm");
    }

    public void Reset() => _buffers.Reset();

    public void Dispose() => _buffers.Dispose();
}
