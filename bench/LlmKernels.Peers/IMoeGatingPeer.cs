namespace LlmKernels.Peers;

/// <summary>One implementation of MoE gating set up for one <see cref="MoeGatingCase"/>: where its ids and weights are.</summary>
public unsafe interface IMoeGatingPeer : IBenchPeer
{
    /// <summary>Token 0's k expert ids, int32.</summary>
    int* Ids { get; }

    /// <summary>Elements between two tokens' ids: k, or more when the ids are a view of a wider tensor (ggml's top-k of a full argsort).</summary>
    long IdsStride { get; }

    /// <summary>The weights, f32 <c>[tokens, k]</c> contiguous, each beside the id at the same position.</summary>
    float* Weights { get; }

    /// <summary>
    /// Whether the peer keeps the contract's order (docs/moe.md): exact ties of scores to the lower id when choosing,
    /// outputs in descending weight order, ties to the lower id. LlmKernels and the naive loop do; ggml's argsort
    /// breaks exact ties as std::sort leaves them and returns the experts in selection order (by p + bias, not by
    /// weight), so its outputs are checked as a set of (id, weight) pairs instead.
    /// </summary>
    bool ContractOrder => true;
}
