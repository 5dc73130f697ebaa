namespace LlmKernels.Peers;

/// <summary>
/// One measurement of one kernel family: which kernel, element type and shape, who it is compared
/// with, and the minimal memory traffic every GB/s figure is computed from. Cases are cheap values;
/// <see cref="Prepare"/> allocates the inputs.
/// </summary>
public interface IBenchCase
{
    /// <summary>The family `llmk bench --filter` selects: rms_norm, layer_norm, swiglu, rope, attention, moe_gating, moe_permute.</summary>
    string Family { get; }

    /// <summary>The kernel and form, as in tables and JSON (e.g. fused_add_layer_norm, swiglu_split).</summary>
    string Kernel { get; }

    BenchDtype Dtype { get; }

    /// <summary>The dimensions recorded in JSON; each family's README section says what they are.</summary>
    IReadOnlyList<long> Shape { get; }

    string ShapeText { get; }

    /// <summary>The peers this case compares with, in table order (LlmKernels itself is not listed).</summary>
    IReadOnlyList<string> Peers { get; }

    /// <summary>The element type <paramref name="peer"/> runs when the case asks for <see cref="Dtype"/>.</summary>
    BenchDtype DtypeFor(string peer);

    /// <summary>The minimal read + write traffic of one call of <paramref name="peer"/>, at the element type it runs.</summary>
    long BytesFor(string peer);

    /// <summary>
    /// FLOPs of one call for a compute-bound case, whose metric is GFLOP/s against the FMA peak
    /// (attention prefill); null for the memory-bound ones, measured in GB/s.
    /// </summary>
    long? Flops => null;

    /// <summary>
    /// The fraction of one call <paramref name="peer"/>'s timed operation performs (<see cref="IBenchPeer.WorkFraction"/>, which
    /// reads it from here): 1, except for the naive attention loops, timed on a slice.
    /// </summary>
    double WorkFractionFor(string peer) => 1;

    /// <summary>The ceiling this case's fraction is taken against: the copy ceiling unless the family says otherwise.</summary>
    BenchCeiling Ceiling => BenchCeiling.Copy;

    /// <summary>Allocates and fills the inputs every peer of this case starts from.</summary>
    IBenchWorkload Prepare();
}

/// <summary>
/// The inputs of one case, as f32 shared by every peer (each converts them to the element type it
/// runs), and the two things a measurement needs from its family: making a peer, and checking its
/// result against the float64 reference.
/// </summary>
public interface IBenchWorkload : IDisposable
{
    IBenchCase Case { get; }

    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    IBenchPeer Create(string peer, int threads, CpuContext context);

    /// <summary>Runs <paramref name="peer"/> once from fresh inputs and compares its outputs with the float64 reference.</summary>
    CheckResult Check(IBenchPeer peer);
}
