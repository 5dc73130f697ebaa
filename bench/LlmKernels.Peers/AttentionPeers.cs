namespace LlmKernels.Peers;

/// <summary>The attention peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class AttentionPeers
{
    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static IAttentionPeer Create(string peer, AttentionInputs inputs, int threads, CpuContext context)
    {
        var dtype = inputs.Case.DtypeFor(peer);
        return (IAttentionPeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsAttentionPeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlAttentionPeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.OnnxRuntime => new OrtAttentionPeer(inputs, dtype, threads),
            PeerNames.Naive => NaiveAttentionPeer.Create(inputs, dtype),
            PeerNames.TensorPrimitives => throw new NotSupportedException("attention is not a composition of TensorPrimitives' span operations"),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
