namespace LlmKernels.Peers;

/// <summary>One implementation of MoE permute or combine set up for one <see cref="MoePermuteCase"/>: where its output is.</summary>
public unsafe interface IMoePermutePeer : IBenchPeer
{
    /// <summary>The rows written, contiguous, of <see cref="IBenchPeer.Dtype"/>: <c>[tokens * k, hidden]</c> in expert order (permute) or <c>[tokens, hidden]</c> (combine).</summary>
    void* Out { get; }
}
