using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// Achieved bandwidth: the case's minimal read + write traffic for the method's peer (at the
/// element type it actually ran: ggml's bf16 rows move f32; <see cref="IBenchCase.BytesFor"/>)
/// divided by the mean time per call.
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
        var type = benchmarkCase.Descriptor.Type;
        if (statistics is null || type.IsAbstract || Activator.CreateInstance(type) is not PeerSuite suite)
            return "-";
        // The suite's parameters, set as BenchmarkDotNet sets them, describe the case.
        foreach (var parameter in benchmarkCase.Parameters.Items)
            type.GetProperty(parameter.Name)?.SetValue(suite, parameter.Value);
        string peer = benchmarkCase.Descriptor.WorkloadMethod.Name.ToLowerInvariant();
        // A peer timed on a slice of the call (the naive attention loops) moves that fraction of the bytes.
        double bytes = suite.Case.BytesFor(peer) * suite.Case.WorkFractionFor(peer);
        return (bytes / statistics.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture); // bytes/ns = GB/s
    }
}
