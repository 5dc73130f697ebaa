namespace LlmKernels.Peers;

/// <summary>
/// The inputs of one <see cref="MoePermuteCase"/>, shared by every peer: a fixed random routing, each token's k distinct
/// experts uniform among all (<see cref="TestData.Index"/>), the reference plan built from it
/// (<see cref="MoeRoutingPlan.Reference"/>), each slot's f32 weight (k values uniform in [0.25, 1.25), divided by their
/// sum in f32: Mixtral's renormalised top-k weights in shape), and f32 rows from <see cref="TestData"/> in [-2, 2)
/// (exact in bf16, never zero or denormal): the token rows <c>[tokens, hidden]</c> for permute, or the experts' output
/// rows <c>[tokens * k, hidden]</c> in expert order for combine (separate random data: an expert layer's output is not
/// its input). Only the rows the case's kernel reads are allocated.
/// </summary>
public sealed unsafe class MoePermuteInputs : IBenchWorkload
{
    private MoePermuteInputs(MoePermuteCase @case, ulong seed)
    {
        Case = @case;
        int tokens = checked((int)@case.Tokens), k = @case.TopK, experts = checked((int)@case.Experts);
        ulong state = seed;
        ExpertIds = new int[tokens * k];
        var pool = new int[experts];
        for (int t = 0; t < tokens; t++)
        {
            // A partial Fisher-Yates shuffle: k distinct experts, each k-subset equally likely.
            for (int e = 0; e < experts; e++)
                pool[e] = e;
            for (int j = 0; j < k; j++)
            {
                int pick = j + TestData.Index(experts - j, ref state);
                (pool[j], pool[pick]) = (pool[pick], pool[j]);
                ExpertIds[t * k + j] = pool[j];
            }
        }
        Plan = MoeRoutingPlan.Reference(ExpertIds, experts);

        Weights = TestData.Create(@case.Rows, 0.25f, 1f, ref state);
        float* w = Weights.As<float>();
        for (long t = 0; t < tokens; t++)
        {
            float sum = 0;
            for (int j = 0; j < k; j++)
                sum += w[t * k + j];
            for (int j = 0; j < k; j++)
                w[t * k + j] /= sum;
        }
        Source = TestData.Create((@case.Combine ? @case.Rows : @case.Tokens) * @case.Hidden, -2f, 4f, ref state);
    }

    public static MoePermuteInputs Create(MoePermuteCase @case, ulong seed = TestData.DefaultSeed) => new(@case, seed);

    public MoePermuteCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;

    /// <summary>[tokens, k]: each token's k distinct experts.</summary>
    public int[] ExpertIds { get; }

    /// <summary>The plan of <see cref="ExpertIds"/> as the contract defines it.</summary>
    public MoeRoutingPlan Plan { get; }

    /// <summary>[tokens, k] f32, each token's summing to 1 (within f32 rounding).</summary>
    public NativeBuffer Weights { get; }

    /// <summary>f32 rows the kernel reads: the token rows [tokens, hidden] (permute) or the experts' output rows [tokens * k, hidden] (combine).</summary>
    public NativeBuffer Source { get; }

    /// <summary>Rows of <see cref="Source"/>.</summary>
    public long SourceRows => Case.Combine ? Case.Rows : Case.Tokens;

    /// <summary>Rows a peer writes: tokens * k (permute) or tokens (combine).</summary>
    public long OutputRows => Case.Combine ? Case.Tokens : Case.Rows;

    public IBenchPeer Create(string peer, int threads, CpuContext context) => MoePermutePeers.Create(peer, this, threads, context);

    public CheckResult Check(IBenchPeer peer) => MoePermuteCheck.Run((IMoePermutePeer)peer, this);

    public void Dispose()
    {
        Weights.Dispose();
        Source.Dispose();
    }
}
