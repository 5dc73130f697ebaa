namespace LlmKernels.Peers;

/// <summary>
/// The inputs of one <see cref="RopeCase"/>, shared by every peer: the fused qkv buffer as f32
/// (values from <see cref="TestData"/>, exact in bf16 and f16), the int32 positions, and the
/// cos/sin cache [max_position, rot_dim] (cos half, then sin half, vLLM's layout) with each angle
/// computed in double and rounded once, which the peers that take a cache use (LlmKernels builds its
/// own with lk_rope_cache_build).
/// </summary>
public sealed unsafe class RopeInputs : IBenchWorkload
{
    private RopeInputs(RopeCase @case, ulong seed)
    {
        Case = @case;
        ulong state = seed;
        Qkv = TestData.Create(@case.Tokens * RopeCase.TokenStride, -2f, 4f, ref state);
        Positions = new NativeBuffer(@case.Tokens * sizeof(int));
        for (long t = 0; t < @case.Tokens; t++)
            Positions.As<int>()[t] = @case.Position(t);
        const long half = RopeCase.RotDim / 2;
        Cache = new NativeBuffer(RopeCase.MaxPosition * RopeCase.RotDim * sizeof(float));
        for (long p = 0; p < RopeCase.MaxPosition; p++)
            for (long j = 0; j < half; j++)
            {
                double angle = p * RopeCase.InverseFrequency(j);
                Cache.As<float>()[p * RopeCase.RotDim + j] = (float)Math.Cos(angle);
                Cache.As<float>()[p * RopeCase.RotDim + half + j] = (float)Math.Sin(angle);
            }
    }

    public static RopeInputs Create(RopeCase @case, ulong seed = TestData.DefaultSeed) => new(@case, seed);

    public RopeCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;

    /// <summary>[tokens, TokenStride] f32: q heads, k heads, v heads per token.</summary>
    public NativeBuffer Qkv { get; }

    /// <summary>[tokens] int32.</summary>
    public NativeBuffer Positions { get; }

    /// <summary>[max_position, rot_dim] f32.</summary>
    public NativeBuffer Cache { get; }

    public IBenchPeer Create(string peer, int threads, CpuContext context) => RopePeers.Create(peer, this, threads, context);

    public CheckResult Check(IBenchPeer peer) => RopeCheck.Run((IRopePeer)peer, this);

    public void Dispose()
    {
        Qkv.Dispose();
        Positions.Dispose();
        Cache.Dispose();
    }
}
