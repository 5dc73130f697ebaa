namespace LlmKernels.Peers;

/// <summary>The LayerNorm peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class LayerNormPeers
{
    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static INormPeer Create(string peer, LayerNormInputs inputs, int threads, CpuContext context)
    {
        var dtype = inputs.Case.DtypeFor(peer);
        return (INormPeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsNormPeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlLayerNormPeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.OnnxRuntime => new OrtLayerNormPeer(inputs, dtype, threads),
            PeerNames.TensorPrimitives => new TensorPrimitivesLayerNormPeer(inputs, dtype),
            PeerNames.Naive => NaiveLayerNormPeer.Create(inputs, dtype),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
