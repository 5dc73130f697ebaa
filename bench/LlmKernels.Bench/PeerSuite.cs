using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// The shape of every suite: one benchmark method per implementation, the same peers `llmk bench`
/// uses (bench/LlmKernels.Peers), each case an <see cref="IBenchCase"/> built from the suite's
/// parameters. Each method's setup builds only its own peer, checks its result against the float64
/// reference and refuses to run (a failed benchmark, with the reason) when it is wrong or
/// unavailable (a library missing, or a LlmKernels entry point this native build lacks).
/// LlmKernels is the baseline, so BenchmarkDotNet's Ratio column is peer time / LlmKernels time,
/// as in `llmk bench`: above 1 means LlmKernels is faster. ggml runs f32 whatever the case asks:
/// its bf16 rows are its f32 numbers.
/// </summary>
public abstract class PeerSuite
{
    private IBenchWorkload? _workload;
    private CpuContext? _context;
    private IBenchPeer? _peer;

    /// <summary>The case the suite's parameters describe.</summary>
    public abstract IBenchCase Case { get; }

    [GlobalSetup(Target = nameof(LlmKernels))] public void SetupLlmKernels() => Setup(PeerNames.LlmKernels);
    [GlobalSetup(Target = nameof(Ggml))] public void SetupGgml() => Setup(PeerNames.Ggml);
    [GlobalSetup(Target = nameof(TensorPrimitives))] public void SetupTensorPrimitives() => Setup(PeerNames.TensorPrimitives);
    [GlobalSetup(Target = nameof(Naive))] public void SetupNaive() => Setup(PeerNames.Naive);

    [Benchmark(Baseline = true)] public void LlmKernels() => Peer.Run();
    [Benchmark] public void Ggml() => Peer.Run();
    [Benchmark] public void TensorPrimitives() => Peer.Run();
    [Benchmark] public void Naive() => Peer.Run();

    /// <summary>The implementation the running method's setup built.</summary>
    protected IBenchPeer Peer => _peer!;

    protected void Setup(string peer)
    {
        int threads = BenchConfig.Threads;
        var @case = Case;
        _workload = @case.Prepare();
        _context = new CpuContext(new CpuContextOptions { ThreadCount = threads });
        _peer = _workload.Create(peer, threads, _context);
        var check = _workload.Check(_peer);
        if (!check.Ok)
            throw new InvalidOperationException($"{peer} {@case.Kernel} {@case.Dtype.Name()} {@case.ShapeText} disagrees with the reference: {check.Detail}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _peer?.Dispose();
        _context?.Dispose();
        _workload?.Dispose();
    }
}

/// <summary>A suite whose kernel ONNX Runtime also runs as a one-node model (bench/models).</summary>
public abstract class OrtPeerSuite : PeerSuite
{
    [GlobalSetup(Target = nameof(OnnxRuntime))] public void SetupOnnxRuntime() => Setup(PeerNames.OnnxRuntime);

    [Benchmark] public void OnnxRuntime() => Peer.Run();
}
