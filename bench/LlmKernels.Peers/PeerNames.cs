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
    /// Runs a peer's constructor; what a missing library or entry point, a missing or refused model
    /// or an unsupported type throws becomes a <see cref="PeerUnavailableException"/>: a reason in
    /// the table, not a crash. Anything else is a failure the measurement reports as such.
    /// </summary>
    public static IBenchPeer Create(Func<IBenchPeer> create)
    {
        try
        {
            return create();
        }
        catch (EntryPointNotFoundException e)
        {
            throw new PeerUnavailableException(MissingEntryPoint(e), e);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException or FileNotFoundException or NotSupportedException
            or TypeInitializationException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            throw new PeerUnavailableException($"{e.GetType().Name}: {e.Message.Split('\n')[0]}", e);
        }
    }

    /// <summary>The reason a LlmKernels row is unavailable when its native build lacks the family's kernel.</summary>
    public static string MissingEntryPoint(EntryPointNotFoundException e) => $"entry point missing in this build: {e.Message.Split('\n')[0]}";

    /// <summary>The ggml library matching LlmKernels' ISA, or <see cref="PeerUnavailableException"/> with the reason.</summary>
    public static GgmlLibrary GgmlFor(CpuContext context) =>
        GgmlLibrary.TryGet(context.Isa, out string reason) ?? throw new PeerUnavailableException(reason);
}
