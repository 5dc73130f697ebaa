using System.Runtime.InteropServices;

namespace LlmKernels.Peers;

/// <summary>
/// A ggml computation as llama.cpp runs one on the CPU, shared by every ggml peer: one arena that
/// holds every tensor's data (inputs, intermediates, outputs), headers and the graph; the graph and
/// its plan built once; a persistent ggml thread pool with the benchmark's thread count; a call is
/// one <c>ggml_graph_compute</c>.
/// </summary>
public sealed unsafe class GgmlGraph : IDisposable
{
    private readonly nint _context;
    private nint _graph;
    private nint _threadpool;
    private GgmlCplan* _plan;
    private NativeBuffer? _work;
    private bool _disposed;

    /// <param name="dataBytes">Every tensor's data together.</param>
    /// <param name="tensors">How many tensor headers (views and results included).</param>
    public GgmlGraph(GgmlLibrary ggml, long dataBytes, int tensors)
    {
        Ggml = ggml;
        nuint arena = (nuint)dataBytes + (nuint)tensors * (ggml.TensorOverhead() + 64) + ggml.GraphOverhead() + (1 << 20);
        _context = ggml.Init(new GgmlInitParams { MemSize = arena, MemBuffer = 0, NoAlloc = 0 });
        if (_context == 0)
            throw new OutOfMemoryException($"ggml_init could not allocate a {arena} byte arena");
    }

    public GgmlLibrary Ggml { get; }

    /// <summary>The ggml_context every tensor of this graph is created in.</summary>
    public nint Context => _context;

    /// <summary>A new f32 tensor [ne1, ne0] (ggml's ne0 is the contiguous dimension).</summary>
    public nint NewF32(long ne0, long ne1 = 1) => ne1 == 1 ? Ggml.NewTensor1d(_context, GgmlLibrary.TypeF32, ne0) : Ggml.NewTensor2d(_context, GgmlLibrary.TypeF32, ne0, ne1);

    public void* Data(nint tensor) => Ggml.GetData(tensor);

    /// <summary>Copies <paramref name="count"/> f32 values into a tensor's data.</summary>
    public void Upload(float* source, nint tensor, long count) =>
        Buffer.MemoryCopy(source, Ggml.GetData(tensor), count * sizeof(float), count * sizeof(float));

    /// <summary>Builds the graph that computes <paramref name="outputs"/>, its thread pool and its plan.</summary>
    public void Build(int threads, params nint[] outputs)
    {
        _graph = Ggml.NewGraph(_context);
        foreach (nint output in outputs)
            Ggml.BuildForwardExpand(_graph, output);

        // ggml_threadpool_params is ~530 bytes in this release; init fills it, so its layout stays ggml's business.
        byte* poolParams = stackalloc byte[4096];
        new Span<byte>(poolParams, 4096).Clear();
        Ggml.ThreadpoolParamsInit(poolParams, threads);
        _threadpool = Ggml.ThreadpoolNew(poolParams);

        _plan = (GgmlCplan*)NativeMemory.AllocZeroed((nuint)sizeof(GgmlCplan));
        *_plan = Ggml.GraphPlan(_graph, threads, _threadpool);
        if (_plan->WorkSize > 0)
        {
            _work = new NativeBuffer((long)_plan->WorkSize);
            _plan->WorkData = _work.Pointer;
        }
    }

    public void Compute()
    {
        int status = Ggml.GraphCompute(_graph, _plan);
        if (status != 0)
            throw new InvalidOperationException($"ggml_graph_compute returned status {status}");
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_plan != null)
        {
            Ggml.ThreadpoolFree(_threadpool);
            NativeMemory.Free(_plan);
            _plan = null;
        }
        Ggml.Free(_context);
        _work?.Dispose();
    }
}
