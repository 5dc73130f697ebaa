namespace LlmKernels.Peers;

/// <summary>How a peer's measurement ended.</summary>
public enum PeerStatus
{
    /// <summary>Checked against the reference and timed.</summary>
    Ok,
    /// <summary>Cannot run here (library or model missing, type unsupported); <see cref="PeerResult.Detail"/> says why.</summary>
    Unavailable,
    /// <summary>Ran, but its result disagrees with the reference: not timed.</summary>
    Mismatch,
    /// <summary>Threw while running.</summary>
    Failed,
}

/// <summary>One implementation's measurement of one case: time per call, and the traffic at the element type it ran.</summary>
/// <remarks>
/// <paramref name="Flops"/>: the case's FLOPs per call when it is compute-bound (<see cref="IBenchCase.Flops"/>).
/// <paramref name="WorkFraction"/>: the fraction of the call the peer actually ran when timed on a slice
/// (<see cref="IBenchPeer.WorkFraction"/>); <paramref name="Seconds"/> is then already scaled to the whole call.
/// </remarks>
public sealed record PeerResult(
    string Peer,
    BenchDtype Dtype,
    int Threads,
    long Bytes,
    PeerStatus Status,
    double? Seconds,
    double? MaxError,
    string Detail,
    long? Flops = null,
    double WorkFraction = 1)
{
    public double? GBps => Seconds is double s ? Bytes / s / 1e9 : null;

    public double? GFlops => Seconds is double s && Flops is long f ? f / s / 1e9 : null;

    /// <summary>The rate a row shows: GFLOP/s for a compute-bound case, else GB/s.</summary>
    public double? Rate => Flops is null ? GBps : GFlops;

    public string StatusText => Status.ToString().ToLowerInvariant();
}

/// <summary>
/// The measurement of one case: LlmKernels and every peer, in the same run and thread count.
/// <paramref name="Cold"/>: every implementation was timed one call per sample after evicting the
/// caches (a DRAM-class case); otherwise warm, repeated calls.
/// </summary>
public sealed record BenchRow(IBenchCase Case, PeerResult Ours, IReadOnlyList<PeerResult> Peers, bool Cold = false,
                              double? LocalCeiling = null)
{
    /// <summary>
    /// The ceiling this row's fraction is taken against, in its rate's unit: the FMA peak (GFLOP/s) for a
    /// compute-bound case, the copy or read ceiling (GB/s) otherwise; each measured next to the row
    /// (<see cref="LocalCeiling"/>: cold and compute-bound rows, see <see cref="CopyProbe"/>) or else the run's.
    /// </summary>
    public double Ceiling(Ceilings run) => Case.Ceiling switch
    {
        BenchCeiling.Fma => LocalCeiling ?? run.FmaPeakGflops ?? double.NaN,
        BenchCeiling.Read => LocalCeiling ?? run.ReadGBps,
        _ => LocalCeiling ?? run.CopyGBps,
    };

    /// <summary>The run-wide value of this row's ceiling (the JSON's run_ceiling).</summary>
    public double RunCeiling(Ceilings run) => Case.Ceiling switch
    {
        BenchCeiling.Fma => run.FmaPeakGflops ?? double.NaN,
        BenchCeiling.Read => run.ReadGBps,
        _ => run.CopyGBps,
    };

    /// <summary>LlmKernels' rate as a fraction of <see cref="Ceiling"/>.</summary>
    public double? Fraction(Ceilings run) => Ours.Rate is double rate ? rate / Ceiling(run) : null;

    /// <summary>"cold" or "warm", as in the table and the JSON's <c>timing</c>.</summary>
    public string Timing => Cold ? "cold" : "warm";

    /// <summary>Peer time / our time: above 1 means LlmKernels is faster. Null unless both were timed.</summary>
    public static double? Ratio(PeerResult ours, PeerResult peer) =>
        ours.Seconds is double o && peer.Seconds is double p ? p / o : null;
}
