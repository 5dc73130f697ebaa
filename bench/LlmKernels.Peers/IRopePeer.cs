namespace LlmKernels.Peers;

/// <summary>
/// One implementation of RoPE set up for one <see cref="RopeCase"/>: where its rotated heads are.
/// Every peer keeps a token's q and k heads side by side (q heads, then k heads, head_dim apart).
/// </summary>
public unsafe interface IRopePeer : IBenchPeer
{
    /// <summary>Token 0's first q head, of <see cref="IBenchPeer.Dtype"/>.</summary>
    void* Qk { get; }

    /// <summary>
    /// Elements between tokens: <see cref="RopeCase.TokenStride"/> for peers that rotate the fused qkv
    /// buffer in place (their v heads follow the k heads and must come back untouched), or
    /// <see cref="RopeCase.RotatedPerToken"/> for a peer with q and k in a tensor of its own.
    /// </summary>
    long TokenStride { get; }

    /// <summary>
    /// Error allowed beyond the element type's: ggml computes each angle in f32 (position x theta
    /// rounded), which at position 4095 is off by up to a few 1e-4 radians.
    /// </summary>
    double AngleTolerance => 0;
}
