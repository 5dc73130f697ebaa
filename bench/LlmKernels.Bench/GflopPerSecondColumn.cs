using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// Achieved arithmetic rate of a compute-bound case (<see cref="IBenchCase.Flops"/>: attention
/// prefill): FLOPs per call / mean time; "-" for the memory-bound cases.
/// </summary>
public sealed class GflopPerSecondColumn : PerCallRateColumn
{
    public override string Id => nameof(GflopPerSecondColumn);
    public override string ColumnName => "GFLOP/s";
    public override int PriorityInCategory => 1;
    public override string Legend => "FLOPs per call (attention prefill: 4 * Sq * Sk * D * H / 2) / mean time, in 10^9 per second";

    protected override double? WorkPerCall(IBenchCase benchCase, string peer) => benchCase.Flops;
}
