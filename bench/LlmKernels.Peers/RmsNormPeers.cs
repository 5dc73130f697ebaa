namespace LlmKernels.Peers;

/// <summary>The RMSNorm peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class RmsNormPeers
{
    /// <summary>
    /// The element type <paramref name="peer"/> runs when the case asks for <paramref name="dtype"/>:
    /// ggml's CPU rms_norm is f32-only, so its bf16 comparison is against its f32 run (labelled so).
    /// </summary>
    public static BenchDtype DtypeFor(string peer, BenchDtype dtype) => peer == PeerNames.Ggml ? BenchDtype.F32 : dtype;

    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static INormPeer Create(string peer, RmsNormInputs inputs, BenchDtype dtype, int threads, CpuContext context)
    {
        dtype = DtypeFor(peer, dtype);
        return (INormPeer)PeerNames.Create(() => peer switch
        {
            PeerNames.LlmKernels => new LlmKernelsRmsNormPeer(inputs, dtype, context),
            PeerNames.Ggml => new GgmlRmsNormPeer(PeerNames.GgmlFor(context), inputs, threads),
            PeerNames.OnnxRuntime => new OrtRmsNormPeer(inputs, dtype, threads),
            PeerNames.TensorPrimitives => new TensorPrimitivesRmsNormPeer(inputs, dtype),
            PeerNames.Naive => NaiveRmsNormPeer.Create(inputs, dtype),
            _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
        });
    }
}
