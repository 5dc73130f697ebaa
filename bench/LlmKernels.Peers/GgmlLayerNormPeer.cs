namespace LlmKernels.Peers;

/// <summary>
/// LayerNorm as llama.cpp builds it on the CPU (llm_graph_context::build_norm with LLM_FFN_NORM):
/// <c>ggml_add(ggml_mul(ggml_norm(x), w), b)</c>, three ops; the fused form adds the residual with
/// <c>ggml_add</c> first (four passes: ggml has no fused add-norm op on the CPU). f32 only: ggml's
/// CPU norm accepts nothing else. Post-norm with alpha 1 is the fused graph without reading the sum
/// back (ggml_scale of the residual would be one more pass for alpha != 1).
/// </summary>
public sealed unsafe class GgmlLayerNormPeer : INormPeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _output;
    private readonly nint _sum;

    public GgmlLayerNormPeer(GgmlLibrary ggml, LayerNormInputs inputs, int threads)
    {
        Threads = threads;
        var @case = inputs.Case;
        long n = @case.Elements, hidden = @case.Hidden;
        bool add = @case.Fused || @case.Post;
        _graph = new GgmlGraph(ggml, ((add ? 6 : 4) * n + 2 * hidden) * sizeof(float), add ? 8 : 6);
        nint context = _graph.Context;

        nint x = _graph.NewF32(hidden, @case.Rows);
        nint w = _graph.NewF32(hidden);
        nint b = _graph.NewF32(hidden);
        nint normalised = x;
        if (add)
        {
            nint residual = _graph.NewF32(hidden, @case.Rows);
            _graph.Upload(inputs.Residual!.As<float>(), residual, n);
            // Not ggml_add_inplace: keeping the residual input unchanged makes every call identical.
            _sum = ggml.Add(context, x, residual);
            normalised = _sum;
            if (@case.Post)
                _sum = 0; // read only: no residual output to check
        }
        _output = ggml.Add(context, ggml.Mul(context, ggml.Norm(context, normalised, LayerNormCase.Epsilon), w), b);
        _graph.Upload(inputs.X.As<float>(), x, n);
        _graph.Upload(inputs.Weight.As<float>(), w, hidden);
        _graph.Upload(inputs.Bias!.As<float>(), b, hidden);
        _graph.Build(threads, _output);
    }

    public string Name => PeerNames.Ggml;
    public BenchDtype Dtype => BenchDtype.F32;
    public int Threads { get; }
    public void* Y => _graph.Data(_output);
    public void* ResidualOut => _sum == 0 ? null : _graph.Data(_sum);

    public void Run() => _graph.Compute();

    public void Reset() { }

    public void Dispose() => _graph.Dispose();
}
