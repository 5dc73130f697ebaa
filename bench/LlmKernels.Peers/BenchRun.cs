namespace LlmKernels.Peers;

/// <summary>Everything one `llmk bench` run measured.</summary>
public sealed record BenchRun(
    BenchOptions Options,
    DateTime StartedUtc,
    string Isa,
    IReadOnlyList<(string Name, string? Version)> Versions,
    Ceilings Ceilings,
    CallOverheadResult? Overhead,
    IReadOnlyList<BenchRow> Rows,
    double? LoadAverageStart,
    double? LoadAverageEnd,
    long? FlushBytes = null,
    int? FlushThreads = null);
