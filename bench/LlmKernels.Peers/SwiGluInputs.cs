namespace LlmKernels.Peers;

/// <summary>
/// The f32 inputs of one <see cref="SwiGluCase"/>: gate and up as separate [tokens, d] tensors,
/// shared by every peer (packed peers interleave them into [gate | up] rows of their own); values
/// from <see cref="TestData"/>, exact in bf16 and f16. The gate spans [-8, 8), so silu sees both its
/// nearly linear and its nearly zero side.
/// </summary>
public sealed unsafe class SwiGluInputs : IBenchWorkload
{
    private SwiGluInputs(SwiGluCase @case, ulong seed)
    {
        Case = @case;
        ulong state = seed;
        Gate = TestData.Create(@case.Elements, -8f, 16f, ref state);
        Up = TestData.Create(@case.Elements, -2f, 4f, ref state);
    }

    public static SwiGluInputs Create(SwiGluCase @case, ulong seed = TestData.DefaultSeed) => new(@case, seed);

    public SwiGluCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;
    public NativeBuffer Gate { get; }
    public NativeBuffer Up { get; }

    public IBenchPeer Create(string peer, int threads, CpuContext context) => SwiGluPeers.Create(peer, this, threads, context);

    public CheckResult Check(IBenchPeer peer) => SwiGluCheck.Run((ISwiGluPeer)peer, this);

    public void Dispose()
    {
        Gate.Dispose();
        Up.Dispose();
    }
}
