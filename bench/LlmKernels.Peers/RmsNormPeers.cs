namespace LlmKernels.Peers;

/// <summary>A peer that cannot run here (library missing, type unsupported); the reason is reported, never thrown further.</summary>
public sealed class PeerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The RMSNorm peers by name, created the same way for `llmk bench` and the BenchmarkDotNet suites.</summary>
public static class RmsNormPeers
{
    public const string LlmKernels = "llmkernels";
    public const string Ggml = "ggml";
    public const string OnnxRuntime = "onnxruntime";
    public const string TensorPrimitives = "tensorprimitives";
    public const string Naive = "naive";

    /// <summary>The peers every RMSNorm measurement compares against, in table order.</summary>
    public static IReadOnlyList<string> Peers { get; } = [Ggml, OnnxRuntime, TensorPrimitives, Naive];

    /// <summary>
    /// The element type <paramref name="peer"/> runs when the case asks for <paramref name="dtype"/>:
    /// ggml's CPU rms_norm is f32-only, so its bf16 comparison is against its f32 run (labelled so).
    /// </summary>
    public static BenchDtype DtypeFor(string peer, BenchDtype dtype) => peer == Ggml ? BenchDtype.F32 : dtype;

    /// <summary>Whether <paramref name="peer"/> runs on the benchmark's threads or on the caller's alone.</summary>
    public static bool IsSingleThreaded(string peer) => peer is TensorPrimitives or Naive;

    /// <summary>Creates and sets up a peer; throws <see cref="PeerUnavailableException"/> when it cannot run here.</summary>
    public static IRmsNormPeer Create(string peer, RmsNormInputs inputs, BenchDtype dtype, int threads, CpuContext context)
    {
        dtype = DtypeFor(peer, dtype);
        try
        {
            return peer switch
            {
                LlmKernels => new LlmKernelsRmsNormPeer(inputs, dtype, context),
                Ggml => GgmlLibrary.TryGet(context.Isa, out string reason) is { } ggml
                    ? new GgmlRmsNormPeer(ggml, inputs, threads)
                    : throw new PeerUnavailableException(reason),
                OnnxRuntime => new OrtRmsNormPeer(inputs, dtype, threads),
                TensorPrimitives => new TensorPrimitivesRmsNormPeer(inputs, dtype),
                Naive => NaiveRmsNormPeer.Create(inputs, dtype),
                _ => throw new ArgumentException($"unknown peer '{peer}'", nameof(peer)),
            };
        }
        catch (Exception e) when (e is not PeerUnavailableException and not ArgumentException and not OutOfMemoryException)
        {
            // ONNX Runtime or ggml missing or refusing the model: a reason in the table, not a crash.
            throw new PeerUnavailableException($"{e.GetType().Name}: {e.Message.Split('\n')[0]}", e);
        }
    }
}
