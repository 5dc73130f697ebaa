using System.Runtime.InteropServices;

namespace LlmKernels.Peers;

/// <summary>
/// RMSNorm as llama.cpp computes it on the CPU: <c>ggml_mul(ggml_rms_norm(x), w)</c>, and the fused
/// form as <c>ggml_add</c> + <c>ggml_rms_norm</c> + <c>ggml_mul</c> (three passes over memory: ggml has
/// no fused add-norm op on the CPU). f32 only: ggml's CPU rms_norm accepts nothing else.
/// The graph and its plan are built once; a call is one <c>ggml_graph_compute</c> on a persistent
/// ggml thread pool with the benchmark's thread count, which is how llama.cpp runs a graph.
/// </summary>
public sealed unsafe class GgmlRmsNormPeer : IRmsNormPeer
{
    private readonly GgmlLibrary _ggml;
    private readonly nint _context;
    private readonly nint _graph;
    private readonly nint _threadpool;
    private readonly nint _output;
    private readonly nint _sum;
    private GgmlCplan* _plan;
    private NativeBuffer? _work;

    public GgmlRmsNormPeer(GgmlLibrary ggml, RmsNormInputs inputs, int threads)
    {
        _ggml = ggml;
        Threads = threads;
        var @case = inputs.Case;
        long n = @case.Elements, hidden = @case.Hidden, rows = @case.Rows;

        // The arena holds every tensor's data: inputs, intermediates and output, plus headers and the graph.
        int tensors = @case.Fused ? 6 : 4;
        long dataBytes = ((@case.Fused ? 5 : 3) * n + hidden) * sizeof(float);
        nuint arena = (nuint)dataBytes + (nuint)tensors * (ggml.TensorOverhead() + 64) + ggml.GraphOverhead() + (1 << 20);
        _context = ggml.Init(new GgmlInitParams { MemSize = arena, MemBuffer = 0, NoAlloc = 0 });
        if (_context == 0)
            throw new OutOfMemoryException($"ggml_init could not allocate a {arena} byte arena");

        // ggml's ne0 is the contiguous (hidden) dimension.
        nint x = ggml.NewTensor2d(_context, GgmlLibrary.TypeF32, hidden, rows);
        nint w = ggml.NewTensor1d(_context, GgmlLibrary.TypeF32, hidden);
        nint normalised = x;
        if (@case.Fused)
        {
            nint residual = ggml.NewTensor2d(_context, GgmlLibrary.TypeF32, hidden, rows);
            Copy(inputs.Residual!, residual, n);
            // Not ggml_add_inplace: keeping the residual input unchanged makes every call identical.
            _sum = ggml.Add(_context, x, residual);
            normalised = _sum;
        }
        _output = ggml.Mul(_context, ggml.RmsNorm(_context, normalised, RmsNormCase.Epsilon), w);
        Copy(inputs.X, x, n);
        Copy(inputs.Weight, w, hidden);

        _graph = ggml.NewGraph(_context);
        ggml.BuildForwardExpand(_graph, _output);

        // ggml_threadpool_params is ~530 bytes in this release; init fills it, so its layout stays ggml's business.
        byte* poolParams = stackalloc byte[4096];
        new Span<byte>(poolParams, 4096).Clear();
        ggml.ThreadpoolParamsInit(poolParams, threads);
        _threadpool = ggml.ThreadpoolNew(poolParams);

        _plan = (GgmlCplan*)NativeMemory.AllocZeroed((nuint)sizeof(GgmlCplan));
        *_plan = ggml.GraphPlan(_graph, threads, _threadpool);
        if (_plan->WorkSize > 0)
        {
            _work = new NativeBuffer((long)_plan->WorkSize);
            _plan->WorkData = _work.Pointer;
        }
    }

    public string Name => "ggml";
    public BenchDtype Dtype => BenchDtype.F32;
    public int Threads { get; }
    public void* Y => _ggml.GetData(_output);
    public void* ResidualOut => _sum == 0 ? null : _ggml.GetData(_sum);

    public void Run()
    {
        int status = _ggml.GraphCompute(_graph, _plan);
        if (status != 0)
            throw new InvalidOperationException($"ggml_graph_compute returned status {status}");
    }

    public void Reset() { }

    private void Copy(NativeBuffer source, nint tensor, long count) =>
        Buffer.MemoryCopy(source.Pointer, _ggml.GetData(tensor), count * sizeof(float), count * sizeof(float));

    public void Dispose()
    {
        if (_plan == null)
            return;
        _ggml.ThreadpoolFree(_threadpool);
        _ggml.Free(_context);
        _work?.Dispose();
        NativeMemory.Free(_plan);
        _plan = null;
    }
}
