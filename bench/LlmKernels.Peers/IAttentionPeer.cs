namespace LlmKernels.Peers;

/// <summary>
/// One implementation of attention set up for one <see cref="AttentionCase"/>: where its output is.
/// Every peer writes the output token-major, <c>[total queries, 32, 128]</c> (a token's heads side
/// by side), in <see cref="OutputDtype"/>.
/// </summary>
public unsafe interface IAttentionPeer : IBenchPeer
{
    /// <summary>Query token 0's first head.</summary>
    void* Output { get; }

    /// <summary>The output's element type: the case's, or f32 for ggml (whose K and V are f16).</summary>
    BenchDtype OutputDtype => Dtype;

    /// <summary>
    /// Whether the peer's call computes query token <paramref name="token"/>'s head <paramref name="head"/>:
    /// every one, except for a peer timed on a slice of the call (<see cref="IBenchPeer.WorkFraction"/>).
    /// </summary>
    bool Computes(long token, long head) => true;

    /// <summary>Error allowed, relative to max(|reference|, 1): the element type's unless the peer says why more.</summary>
    double Tolerance => ErrorTracker.Tolerance(OutputDtype);
}
