namespace LlmKernels.Peers;

/// <summary>The MoE gating peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class MoeGatingPeers
{
    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static IMoeGatingPeer Create(string peer, MoeGatingInputs inputs, int threads, CpuContext context)
    {
        var dtype = inputs.Case.DtypeFor(peer);
        return (IMoeGatingPeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsMoeGatingPeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlMoeGatingPeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.Naive => NaiveMoeGatingPeer.Create(inputs, dtype),
            PeerNames.OnnxRuntime => throw new NotSupportedException("no ONNX Runtime model of MoE gating in this bench"),
            PeerNames.TensorPrimitives => throw new NotSupportedException("top-k selection is not a composition of TensorPrimitives' span operations"),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
