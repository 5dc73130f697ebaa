using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// Achieved bandwidth: the case's minimal read + write traffic for the method's peer (at the
/// element type it actually ran: ggml's bf16 rows move f32; <see cref="IBenchCase.BytesFor"/>)
/// divided by the mean time per call.
/// </summary>
public sealed class GbPerSecondColumn : PerCallRateColumn
{
    public override string Id => nameof(GbPerSecondColumn);
    public override string ColumnName => "GB/s";
    public override int PriorityInCategory => 0;
    public override string Legend => "Minimal read + write bytes per call / mean time, in 10^9 bytes per second";

    protected override double? WorkPerCall(IBenchCase benchCase, string peer) => benchCase.BytesFor(peer);
}
