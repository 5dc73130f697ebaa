namespace LlmKernels.Peers;

/// <summary>A peer that cannot run here (library missing, type unsupported); the reason is reported, never thrown further.</summary>
public sealed class PeerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The implementations every family is measured with, by the names tables and JSON use.</summary>
public static class PeerNames
{
    public const string LlmKernels = "llmkernels";
    public const string Ggml = "ggml";
    public const string OnnxRuntime = "onnxruntime";
    public const string TensorPrimitives = "tensorprimitives";
    public const string Naive = "naive";

    /// <summary>Every comparison peer, in table order; a family without an ONNX Runtime op lists fewer.</summary>
    public static IReadOnlyList<string> All { get; } = [Ggml, OnnxRuntime, TensorPrimitives, Naive];

    /// <summary>Whether <paramref name="peer"/> runs on the benchmark's threads or on the caller's alone.</summary>
    public static bool IsSingleThreaded(string peer) => peer is TensorPrimitives or Naive;

    /// <summary>
    /// Runs a peer's constructor; whatever a missing library, a refused model or an unsupported
    /// type throws becomes a <see cref="PeerUnavailableException"/>: a reason in the table, not a crash.
    /// </summary>
    public static IBenchPeer Create(string peer, Func<IBenchPeer> create)
    {
        try
        {
            return create();
        }
        catch (Exception e) when (e is not PeerUnavailableException and not ArgumentException and not OutOfMemoryException)
        {
            throw new PeerUnavailableException($"{e.GetType().Name}: {e.Message.Split('\n')[0]}", e);
        }
    }

    /// <summary>The ggml library matching LlmKernels' ISA, or <see cref="PeerUnavailableException"/> with the reason.</summary>
    public static GgmlLibrary GgmlFor(CpuContext context) =>
        GgmlLibrary.TryGet(context.Isa, out string reason) ?? throw new PeerUnavailableException(reason);
}
