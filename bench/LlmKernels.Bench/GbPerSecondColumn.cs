using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// Achieved bandwidth: the case's minimal read + write traffic (at the element type the method
/// actually ran: ggml's bf16 rows move f32) divided by the mean time per call.
/// </summary>
public sealed class GbPerSecondColumn : IColumn
{
    public string Id => nameof(GbPerSecondColumn);
    public string ColumnName => "GB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Minimal read + write bytes per call / mean time, in 10^9 bytes per second";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var statistics = summary[benchmarkCase]?.ResultStatistics;
        if (statistics is null || benchmarkCase.Descriptor.Type.IsAbstract
            || Activator.CreateInstance(benchmarkCase.Descriptor.Type) is not RmsNormSuite suite)
            return "-";
        suite.Dtype = (string)benchmarkCase.Parameters[nameof(RmsNormSuite.Dtype)];
        suite.Shape = (string)benchmarkCase.Parameters[nameof(RmsNormSuite.Shape)];
        string peer = benchmarkCase.Descriptor.WorkloadMethod.Name.ToLowerInvariant();
        long bytes = suite.Case.BytesAt(RmsNormPeers.DtypeFor(peer, suite.Case.Dtype));
        return (bytes / statistics.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture); // bytes/ns = GB/s
    }
}
