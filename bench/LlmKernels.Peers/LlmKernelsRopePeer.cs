using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>
/// LlmKernels' <c>lk_rope</c> in place on the q and k heads of the fused qkv buffer (q_stride =
/// k_stride = (32 + 2*8) * 128), int32 positions, with the cos/sin cache the library builds itself
/// (<c>lk_rope_cache_build</c>, rope_theta 500000, no scaling) once at setup; through the generated
/// P/Invoke on a context with the benchmark's thread count. Until the kernels land in the native
/// build, setup throws EntryPointNotFoundException and the row reports LlmKernels as unavailable.
/// </summary>
public sealed unsafe class LlmKernelsRopePeer : IRopePeer
{
    private readonly RopeBuffers _buffers;
    private readonly NativeBuffer _cache;
    private readonly NativeBuffer _positions;
    private readonly CpuContext _context;
    private readonly bool _gptj;

    public LlmKernelsRopePeer(RopeInputs inputs, BenchDtype dtype, CpuContext context)
    {
        _context = context;
        _gptj = inputs.Case.Gptj;
        _buffers = new RopeBuffers(inputs, dtype);
        _positions = new NativeBuffer(inputs.Positions.Bytes);
        Buffer.MemoryCopy(inputs.Positions.Pointer, _positions.Pointer, _positions.Bytes, _positions.Bytes);
        _cache = new NativeBuffer(RopeCase.MaxPosition * RopeCase.RotDim * sizeof(float));
        var cache = new RopeCacheParams
        {
            Cache = _cache.As<float>(),
            MaxPosition = RopeCase.MaxPosition,
            RotDim = RopeCase.RotDim,
            Base = RopeCase.Base,
            Factor = 1,
            Scaling = Interop.RopeScaling.None,
        };
        try
        {
            using var lease = context.Acquire();
            LlmKernelsNative.ThrowIfFailed(NativeMethods.RopeCacheBuild(lease.Handle, &cache), "lk_rope_cache_build");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name => PeerNames.LlmKernels;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => _context.ThreadCount;
    public void* Qk => _buffers.Qkv.Pointer;
    public long TokenStride => RopeCase.TokenStride;

    public void Run()
    {
        var parameters = new RopeParams
        {
            Q = _buffers.Qkv.Pointer,
            K = _buffers.Qkv.Pointer + RopeCase.QHeads * RopeCase.HeadDim * Dtype.Size(),
            Positions = _positions.Pointer,
            CosSinCache = _cache.As<float>(),
            Tokens = _buffers.Tokens,
            NumHeads = RopeCase.QHeads,
            NumKvHeads = RopeCase.KvHeads,
            HeadDim = RopeCase.HeadDim,
            RotDim = RopeCase.RotDim,
            MaxPosition = RopeCase.MaxPosition,
            QStride = RopeCase.TokenStride,
            KStride = RopeCase.TokenStride,
            Style = _gptj ? Interop.RopeStyle.RopeGptj : Interop.RopeStyle.RopeNeox,
            PositionType = IndexType.IndexI32,
            Dtype = LlmKernelsNative.Of(Dtype),
        };
        using var lease = _context.Acquire();
        LlmKernelsNative.ThrowIfFailed(NativeMethods.Rope(lease.Handle, &parameters), "lk_rope");
    }

    public void Reset() => _buffers.Reset();

    public void Dispose()
    {
        _buffers.Dispose();
        _cache.Dispose();
        _positions.Dispose();
    }
}
