namespace LlmKernels.Peers;

/// <summary>
/// The f32 inputs of one <see cref="LayerNormCase"/>, shared by every peer; values from
/// <see cref="TestData"/>, exact in bf16 and f16. x is centred away from zero (mean about 1) so
/// that a one-pass variance that cancels shows in the check.
/// </summary>
public sealed unsafe class LayerNormInputs : IBenchWorkload, INormInputs
{
    private LayerNormInputs(LayerNormCase @case, ulong seed)
    {
        Case = @case;
        ulong state = seed;
        X = TestData.Create(@case.Elements, -1f, 4f, ref state);
        Weight = TestData.Create(@case.Hidden, 0.5f, 1f, ref state);
        Bias = TestData.Create(@case.Hidden, -0.5f, 1f, ref state);
        Residual = @case.Fused || @case.Post ? TestData.Create(@case.Elements, -2f, 4f, ref state) : null;
    }

    public static LayerNormInputs Create(LayerNormCase @case, ulong seed = TestData.DefaultSeed) => new(@case, seed);

    public LayerNormCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;
    public bool Layer => true;
    public bool Fused => Case.Fused;
    public bool Post => Case.Post;
    public long Rows => Case.Rows;
    public long Hidden => Case.Hidden;
    public float Epsilon => LayerNormCase.Epsilon;
    public NativeBuffer X { get; }
    public NativeBuffer Weight { get; }
    public NativeBuffer? Bias { get; }
    public NativeBuffer? Residual { get; }

    public IBenchPeer Create(string peer, int threads, CpuContext context) => LayerNormPeers.Create(peer, this, threads, context);

    public CheckResult Check(IBenchPeer peer) => NormCheck.Run((INormPeer)peer, this);

    public void Dispose()
    {
        X.Dispose();
        Weight.Dispose();
        Bias!.Dispose();
        Residual?.Dispose();
    }
}
