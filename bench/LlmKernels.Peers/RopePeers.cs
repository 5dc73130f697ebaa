namespace LlmKernels.Peers;

/// <summary>The RoPE peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class RopePeers
{
    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static IRopePeer Create(string peer, RopeInputs inputs, int threads, CpuContext context)
    {
        var dtype = inputs.Case.DtypeFor(peer);
        return (IRopePeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsRopePeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlRopePeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.OnnxRuntime => new OrtRopePeer(inputs, dtype, threads),
            PeerNames.TensorPrimitives => new TensorPrimitivesRopePeer(inputs, dtype),
            PeerNames.Naive => NaiveRopePeer.Create(inputs, dtype),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
