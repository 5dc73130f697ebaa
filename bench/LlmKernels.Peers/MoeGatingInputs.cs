namespace LlmKernels.Peers;

/// <summary>
/// The f32 inputs of one <see cref="MoeGatingCase"/>, shared by every peer: router logits <c>[tokens, experts]</c>
/// uniform in [-2, 2) (docs/moe.md's measurements used the same range) and, for a scheme with one, a correction bias
/// <c>[experts]</c> uniform in [-0.25, 0.25), enough to reorder sigmoid scores in (0.12, 0.88). Values from
/// <see cref="TestData"/>: exact in bf16, so a bf16 row reads the same numbers; with 8 significant bits they also tie
/// often at the top of a row, which the check holds the contract's tie rule to (<see cref="MoeGatingCheck"/>).
/// </summary>
public sealed unsafe class MoeGatingInputs : IBenchWorkload
{
    private MoeGatingInputs(MoeGatingCase @case, ulong seed)
    {
        Case = @case;
        ulong state = seed;
        Logits = TestData.Create(@case.Tokens * @case.Experts, -2f, 4f, ref state);
        Bias = @case.Scheme.Bias ? TestData.Create(@case.Experts, -0.25f, 0.5f, ref state) : null;
    }

    public static MoeGatingInputs Create(MoeGatingCase @case, ulong seed = TestData.DefaultSeed) => new(@case, seed);

    public MoeGatingCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;

    /// <summary>[tokens, experts] f32.</summary>
    public NativeBuffer Logits { get; }

    /// <summary>[experts] f32, or null when the scheme has no correction bias.</summary>
    public NativeBuffer? Bias { get; }

    public IBenchPeer Create(string peer, int threads, CpuContext context) => MoeGatingPeers.Create(peer, this, threads, context);

    public CheckResult Check(IBenchPeer peer) => MoeGatingCheck.Run((IMoeGatingPeer)peer, this);

    public void Dispose()
    {
        Logits.Dispose();
        Bias?.Dispose();
    }
}
