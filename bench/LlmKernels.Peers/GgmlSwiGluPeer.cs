namespace LlmKernels.Peers;

/// <summary>
/// SwiGLU as llama.cpp computes it on the CPU: <c>ggml_swiglu(x)</c> on packed [gate | up] rows (its
/// unswapped form takes the gate from the first half, as vLLM's silu_and_mul), and
/// <c>ggml_swiglu_split(gate, up)</c> on two tensors (llm_graph_context::build_ffn with separate
/// gate and up projections). f32: ggml's CPU GLU ops take f32 and f16, not bf16.
/// </summary>
public sealed unsafe class GgmlSwiGluPeer : ISwiGluPeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _output;

    public GgmlSwiGluPeer(GgmlLibrary ggml, SwiGluInputs inputs, int threads)
    {
        Threads = threads;
        var @case = inputs.Case;
        long n = @case.Elements, d = @case.D, tokens = @case.Tokens;
        _graph = new GgmlGraph(ggml, 3 * n * sizeof(float), 4);
        if (@case.Split)
        {
            nint gate = _graph.NewF32(d, tokens), up = _graph.NewF32(d, tokens);
            _graph.Upload(inputs.Gate.As<float>(), gate, n);
            _graph.Upload(inputs.Up.As<float>(), up, n);
            _output = ggml.SwigluSplit(_graph.Context, gate, up);
        }
        else
        {
            nint x = _graph.NewF32(2 * d, tokens);
            SwiGluBuffers.Pack(inputs, _graph.Data(x), BenchDtype.F32);
            _output = ggml.Swiglu(_graph.Context, x);
        }
        _graph.Build(threads, _output);
    }

    public string Name => PeerNames.Ggml;
    public BenchDtype Dtype => BenchDtype.F32;
    public int Threads { get; }
    public void* Out => _graph.Data(_output);

    public void Run() => _graph.Compute();

    public void Reset() { }

    public void Dispose() => _graph.Dispose();
}
