namespace LlmKernels.Peers;

/// <summary>The MoE permute and combine peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class MoePermutePeers
{
    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static IMoePermutePeer Create(string peer, MoePermuteInputs inputs, int threads, CpuContext context)
    {
        var dtype = inputs.Case.DtypeFor(peer);
        return (IMoePermutePeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsMoePermutePeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlMoePermutePeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.Naive => NaiveMoePermutePeer.Create(inputs, dtype),
            PeerNames.OnnxRuntime => throw new NotSupportedException("no ONNX Runtime model of MoE permute or combine in this bench"),
            PeerNames.TensorPrimitives => throw new NotSupportedException("a gather of rows by index is not a TensorPrimitives span operation"),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
