namespace LlmKernels.Peers;

/// <summary>Something timed: one call of <see cref="Run"/> is one operation. It must not allocate.</summary>
public interface ITimedOperation
{
    void Run();
}

/// <summary>
/// One implementation of one kernel set up for one case: its own buffers, already holding the
/// inputs in the element type it runs, and whatever it prepares once (a graph, a session, a
/// context, a cos/sin cache), so that <see cref="ITimedOperation.Run"/> times only the computation.
/// Each family's peer interface (<see cref="INormPeer"/> for RMSNorm and LayerNorm,
/// <see cref="ISwiGluPeer"/>, <see cref="IRopePeer"/>) adds where the results are.
/// </summary>
public interface IBenchPeer : ITimedOperation, IDisposable
{
    /// <summary>The name used in tables and JSON: llmkernels, ggml, onnxruntime, tensorprimitives, naive.</summary>
    string Name { get; }

    /// <summary>The element type this peer actually computes in (ggml runs f32 whatever the case asks).</summary>
    BenchDtype Dtype { get; }

    /// <summary>Threads the computation runs on.</summary>
    int Threads { get; }

    /// <summary>Puts the inputs back as they were before the first call (in-place forms update their inputs).</summary>
    void Reset();

    /// <summary>
    /// The fraction of the case's work one <see cref="ITimedOperation.Run"/> performs: 1, except for a
    /// peer too slow to run the whole call in a benchmark (the naive attention loops run one head or
    /// one sequence). Its time is divided by this fraction, so its rates and ratios are per call of
    /// the whole case, extrapolated from the slice.
    /// </summary>
    double WorkFraction => 1;
}
