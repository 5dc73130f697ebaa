namespace LlmKernels.Peers;

/// <summary>The SwiGLU peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class SwiGluPeers
{
    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static ISwiGluPeer Create(string peer, SwiGluInputs inputs, int threads, CpuContext context)
    {
        var dtype = inputs.Case.DtypeFor(peer);
        return (ISwiGluPeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsSwiGluPeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlSwiGluPeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.OnnxRuntime => throw new PeerUnavailableException("ONNX Runtime has no SwiGLU op on the CPU"),
            PeerNames.TensorPrimitives => new TensorPrimitivesSwiGluPeer(inputs, dtype),
            PeerNames.Naive => NaiveSwiGluPeer.Create(inputs, dtype),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
