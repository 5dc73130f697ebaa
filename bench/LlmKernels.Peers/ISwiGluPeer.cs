namespace LlmKernels.Peers;

/// <summary>One implementation of SwiGLU set up for one <see cref="SwiGluCase"/>: where its output is.</summary>
public unsafe interface ISwiGluPeer : IBenchPeer
{
    /// <summary>The output, [tokens, d] contiguous, of <see cref="IBenchPeer.Dtype"/>.</summary>
    void* Out { get; }
}
