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
public sealed record PeerResult(
    string Peer,
    BenchDtype Dtype,
    int Threads,
    long Bytes,
    PeerStatus Status,
    double? Seconds,
    double? MaxError,
    string Detail)
{
    public double? GBps => Seconds is double s ? Bytes / s / 1e9 : null;

    public string StatusText => Status.ToString().ToLowerInvariant();
}

/// <summary>
/// The measurement of one case: LlmKernels and every peer, in the same run and thread count.
/// <paramref name="Cold"/>: every implementation was timed one call per sample after evicting the
/// caches (a DRAM-class case); otherwise warm, repeated calls.
/// </summary>
public sealed record BenchRow(IBenchCase Case, PeerResult Ours, IReadOnlyList<PeerResult> Peers, bool Cold = false,
                              double? LocalCopyGBps = null)
{
    /// <summary>The copy ceiling this row's fraction is taken against: the one measured next to it (cold rows, see
    /// <see cref="CopyProbe"/>), else the run's.</summary>
    public double CeilingGBps(Ceilings run) => LocalCopyGBps ?? run.CopyGBps;

    /// <summary>"cold" or "warm", as in the table and the JSON's <c>timing</c>.</summary>
    public string Timing => Cold ? "cold" : "warm";

    /// <summary>Peer time / our time: above 1 means LlmKernels is faster. Null unless both were timed.</summary>
    public static double? Ratio(PeerResult ours, PeerResult peer) =>
        ours.Seconds is double o && peer.Seconds is double p ? p / o : null;
}
