using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// A rate column: some amount of work per call of the method's peer (bytes, FLOPs), from the
/// suite's case, divided by the mean time per call. Subclasses say which amount.
/// </summary>
public abstract class PerCallRateColumn : IColumn
{
    public abstract string Id { get; }
    public abstract string ColumnName { get; }
    public abstract int PriorityInCategory { get; }
    public abstract string Legend { get; }
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;

    /// <summary>The work of one call of <paramref name="peer"/> on the case, in units of 10^9 per second once divided by nanoseconds; null where the column does not apply.</summary>
    protected abstract double? WorkPerCall(IBenchCase benchCase, string peer);

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
        // A peer timed on a slice of the call (the naive attention loops) does that fraction of the work.
        return WorkPerCall(suite.Case, peer) is double work
            ? (work * suite.Case.WorkFractionFor(peer) / statistics.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) // per ns = 10^9 per s
            : "-";
    }
}
