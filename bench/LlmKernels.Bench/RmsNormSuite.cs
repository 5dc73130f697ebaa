using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// One benchmark method per implementation, the same peers `llmk bench` uses (bench/LlmKernels.Peers).
/// Each method's setup builds only its own peer, checks its result against the float64 reference
/// and refuses to run (a failed benchmark, with the reason) when it is wrong or unavailable.
/// LlmKernels is the baseline, so BenchmarkDotNet's Ratio column is peer time / LlmKernels time,
/// as in `llmk bench`: above 1 means LlmKernels is faster.
/// ggml always runs f32 (its CPU rms_norm is f32-only): its bf16 rows are its f32 numbers.
/// </summary>
public abstract class RmsNormSuite
{
    private RmsNormInputs? _inputs;
    private CpuContext? _context;
    private IRmsNormPeer? _peer;

    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params("1x4096", "512x4096", "4096x8192")]
    public string Shape { get; set; } = "1x4096";

    /// <summary>The fused residual-add form or plain RMSNorm.</summary>
    public abstract bool Fused { get; }

    public RmsNormCase Case
    {
        get
        {
            var (rows, hidden) = RmsNormCase.ParseShape(Shape);
            return new RmsNormCase(Fused, BenchDtypeExtensions.Parse(Dtype), rows, hidden);
        }
    }

    [GlobalSetup(Target = nameof(LlmKernels))] public void SetupLlmKernels() => Setup(RmsNormPeers.LlmKernels);
    [GlobalSetup(Target = nameof(Ggml))] public void SetupGgml() => Setup(RmsNormPeers.Ggml);
    [GlobalSetup(Target = nameof(OnnxRuntime))] public void SetupOnnxRuntime() => Setup(RmsNormPeers.OnnxRuntime);
    [GlobalSetup(Target = nameof(TensorPrimitives))] public void SetupTensorPrimitives() => Setup(RmsNormPeers.TensorPrimitives);
    [GlobalSetup(Target = nameof(Naive))] public void SetupNaive() => Setup(RmsNormPeers.Naive);

    [Benchmark(Baseline = true)] public void LlmKernels() => _peer!.Run();
    [Benchmark] public void Ggml() => _peer!.Run();
    [Benchmark] public void OnnxRuntime() => _peer!.Run();
    [Benchmark] public void TensorPrimitives() => _peer!.Run();
    [Benchmark] public void Naive() => _peer!.Run();

    private void Setup(string peer)
    {
        int threads = BenchConfig.Threads;
        _inputs = RmsNormInputs.Create(Case);
        _context = new CpuContext(new CpuContextOptions { ThreadCount = threads });
        _peer = RmsNormPeers.Create(peer, _inputs, Case.Dtype, threads, _context);
        var check = RmsNormCheck.Run(_peer, _inputs);
        if (!check.Ok)
            throw new InvalidOperationException($"{peer} {Case.Kernel} {Dtype} {Shape} disagrees with the reference: {check.Detail}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _peer?.Dispose();
        _context?.Dispose();
        _inputs?.Dispose();
    }
}

/// <summary>RMSNorm: y = x / rms(x) * w. Bytes per call: x read + y written (+ the weight once).</summary>
public class RmsNormBenchmarks : RmsNormSuite
{
    public override bool Fused => false;
}

/// <summary>residual += x; y = RmsNorm(residual) * w. Bytes per call: x and residual read, residual and y written.</summary>
public class FusedAddRmsNormBenchmarks : RmsNormSuite
{
    public override bool Fused => true;
}
