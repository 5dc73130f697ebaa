namespace LlmKernels.Peers;

/// <summary>
/// RMSNorm as llama.cpp computes it on the CPU: <c>ggml_mul(ggml_rms_norm(x), w)</c>, and the fused
/// form as <c>ggml_add</c> + <c>ggml_rms_norm</c> + <c>ggml_mul</c> (three passes over memory: ggml has
/// no fused add-norm op on the CPU). f32 only: ggml's CPU rms_norm accepts nothing else.
/// </summary>
public sealed unsafe class GgmlRmsNormPeer : INormPeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _output;
    private readonly nint _sum;

    public GgmlRmsNormPeer(GgmlLibrary ggml, RmsNormInputs inputs, int threads)
    {
        Threads = threads;
        var @case = inputs.Case;
        long n = @case.Elements, hidden = @case.Hidden, rows = @case.Rows;
        _graph = new GgmlGraph(ggml, ((@case.Fused ? 5 : 3) * n + hidden) * sizeof(float), @case.Fused ? 6 : 4);
        nint context = _graph.Context;

        nint x = _graph.NewF32(hidden, rows);
        nint w = _graph.NewF32(hidden);
        nint normalised = x;
        if (@case.Fused)
        {
            nint residual = _graph.NewF32(hidden, rows);
            _graph.Upload(inputs.Residual!.As<float>(), residual, n);
            // Not ggml_add_inplace: keeping the residual input unchanged makes every call identical.
            _sum = ggml.Add(context, x, residual);
            normalised = _sum;
        }
        _output = ggml.Mul(context, ggml.RmsNorm(context, normalised, RmsNormCase.Epsilon), w);
        _graph.Upload(inputs.X.As<float>(), x, n);
        _graph.Upload(inputs.Weight.As<float>(), w, hidden);
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
