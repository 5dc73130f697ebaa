using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;

namespace LlmKernels.Bench;

/// <summary>The suites' configuration: the defaults, plus GB/s, GFLOP/s (compute-bound cases) and allocations (a timed call must allocate nothing).</summary>
public static class BenchConfig
{
    public static IConfig Create() => ManualConfig.Create(DefaultConfig.Instance)
        .AddColumn(new GbPerSecondColumn())
        .AddColumn(new GflopPerSecondColumn())
        .AddDiagnoser(MemoryDiagnoser.Default);

    /// <summary>Threads for every multi-threaded implementation: LLMK_BENCH_THREADS, or all cores.</summary>
    public static int Threads =>
        int.TryParse(Environment.GetEnvironmentVariable("LLMK_BENCH_THREADS"), out int n) && n > 0 ? n : Environment.ProcessorCount;
}
