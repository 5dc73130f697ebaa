using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// Achieved arithmetic rate of a compute-bound case (<see cref="IBenchCase.Flops"/>: attention
/// prefill): FLOPs per call / mean time; "-" for the memory-bound cases.
/// </summary>
public sealed class GflopPerSecondColumn : IColumn
{
    public string Id => nameof(GflopPerSecondColumn);
    public string ColumnName => "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "FLOPs per call (attention prefill: 4 * Sq * Sk * D * H / 2) / mean time, in 10^9 per second";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var statistics = summary[benchmarkCase]?.ResultStatistics;
        var type = benchmarkCase.Descriptor.Type;
        if (statistics is null || type.IsAbstract || Activator.CreateInstance(type) is not PeerSuite suite)
            return "-";
        foreach (var parameter in benchmarkCase.Parameters.Items)
            type.GetProperty(parameter.Name)?.SetValue(suite, parameter.Value);
        string peer = benchmarkCase.Descriptor.WorkloadMethod.Name.ToLowerInvariant();
        return suite.Case.Flops is long flops
            ? (flops * suite.Case.WorkFractionFor(peer) / statistics.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) // FLOP/ns = GFLOP/s
            : "-";
    }
}
