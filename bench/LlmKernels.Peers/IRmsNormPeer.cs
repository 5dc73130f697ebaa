namespace LlmKernels.Peers;

/// <summary>Something timed: one call of <see cref="Run"/> is one operation. It must not allocate.</summary>
public interface ITimedOperation
{
    void Run();
}

/// <summary>
/// One implementation of RMSNorm (or its fused-add form) set up for one <see cref="RmsNormCase"/>:
/// its own buffers, already holding the inputs in the element type it runs, and whatever it
/// prepares once (a graph, a session, a context), so that <see cref="ITimedOperation.Run"/> times
/// only the computation.
/// </summary>
public unsafe interface IRmsNormPeer : ITimedOperation, IDisposable
{
    /// <summary>The name used in tables and JSON: llmkernels, ggml, onnxruntime, tensorprimitives, naive.</summary>
    string Name { get; }

    /// <summary>The element type this peer actually computes in (ggml runs f32 whatever the case asks).</summary>
    BenchDtype Dtype { get; }

    /// <summary>Threads the computation runs on.</summary>
    int Threads { get; }

    /// <summary>The normalised output, [rows, hidden] of <see cref="Dtype"/>.</summary>
    void* Y { get; }

    /// <summary>The fused form's updated residual, [rows, hidden] of <see cref="Dtype"/>; null otherwise.</summary>
    void* ResidualOut { get; }

    /// <summary>Puts the inputs back as they were before the first call (in-place forms update the residual).</summary>
    void Reset();
}
