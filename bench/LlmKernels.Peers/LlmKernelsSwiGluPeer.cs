using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels' <c>lk_glu</c> with the SiLU activation (SwiGLU), packed gate-first or split, through
/// the generated P/Invoke on a context with the benchmark's thread count. Until the kernel lands in
/// the native build, the call throws EntryPointNotFoundException and the row reports LlmKernels as
/// unavailable.
/// </summary>
public sealed unsafe class LlmKernelsSwiGluPeer : ISwiGluPeer
{
    private readonly SwiGluBuffers _buffers;
    private readonly CpuContext _context;

    public LlmKernelsSwiGluPeer(SwiGluInputs inputs, BenchDtype dtype, CpuContext context)
    {
        _buffers = new SwiGluBuffers(inputs, dtype);
        _context = context;
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => _context.ThreadCount;
    public void* Out => _buffers.Out.Pointer;

    public void Run()
    {
        var parameters = new GluParams
        {
            X = _buffers.X.Pointer,
            Up = _buffers.Up is { } up ? up.Pointer : null,
            Out = _buffers.Out.Pointer,
            Tokens = _buffers.Tokens,
            D = _buffers.D,
            Activation = Activation.Silu,
            Layout = _buffers.Up is null ? Interop.GluLayout.GluGateFirst : Interop.GluLayout.GluSplit,
            Dtype = LlmKernelsNative.Of(Dtype),
        };
        using var lease = _context.Acquire();
        LlmKernelsNative.ThrowIfFailed(NativeMethods.Glu(lease.Handle, &parameters), "lk_glu");
    }

    public void Reset() { }

    public void Dispose() => _buffers.Dispose();
}
