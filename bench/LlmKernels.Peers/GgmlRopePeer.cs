namespace LlmKernels.Peers;

/// <summary>
/// RoPE as llama.cpp applies it to a fused qkv projection on the CPU: <c>ggml_view_3d</c> views of
/// the q heads and the k heads inside one [tokens, (32 + 2*8) * 128] tensor, each rotated in place
/// by <c>ggml_rope_ext_inplace</c> (mode GGML_ROPE_TYPE_NEOX, n_dims 128, freq_base 500000,
/// freq_scale 1, ext_factor 0, attn_factor 1: plain RoPE), two nodes of one graph. ggml computes
/// each token's sin/cos from the position in f32 and reads no cache. f32: ggml's CPU rope takes f32
/// and f16, not bf16.
/// </summary>
public sealed unsafe class GgmlRopePeer : IRopePeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _qkv;
    private readonly RopeInputs _inputs;

    public GgmlRopePeer(GgmlLibrary ggml, RopeInputs inputs, int threads)
    {
        Threads = threads;
        _inputs = inputs;
        long tokens = inputs.Case.Tokens;
        _graph = new GgmlGraph(ggml, tokens * (RopeCase.TokenStride + 1) * sizeof(float), 8);
        nint context = _graph.Context;
        _qkv = _graph.NewF32(RopeCase.TokenStride, tokens);
        nint positions = ggml.NewTensor1d(context, GgmlLibrary.TypeI32, tokens);
        Buffer.MemoryCopy(inputs.Positions.Pointer, _graph.Data(positions), tokens * sizeof(int), tokens * sizeof(int));

        const long head = RopeCase.HeadDim * sizeof(float), row = RopeCase.TokenStride * sizeof(float);
        nint q = ggml.View3d(context, _qkv, RopeCase.HeadDim, RopeCase.QHeads, tokens, (nuint)head, (nuint)row, 0);
        nint k = ggml.View3d(context, _qkv, RopeCase.HeadDim, RopeCase.KvHeads, tokens, (nuint)head, (nuint)row, (nuint)(RopeCase.QHeads * head));
        nint Rope(nint heads) => ggml.RopeExtInplace(context, heads, positions, 0, (int)RopeCase.RotDim, GgmlLibrary.RopeModeNeox,
            0, (float)RopeCase.Base, 1f, 0f, 1f, 32f, 1f);
        _graph.Build(threads, Rope(q), Rope(k));
        Reset();
    }

    public string Name => PeerNames.Ggml;
    public BenchDtype Dtype => BenchDtype.F32;
    public int Threads { get; }
    public void* Qk => _graph.Data(_qkv);
    public long TokenStride => RopeCase.TokenStride;

    /// <summary>
    /// ggml's angle is position x theta in f32 (rounded: up to 2^-24 x 4095 x theta radians), and
    /// theta itself a power computed by repeated f32 multiplication: a few 1e-4 at the cache's end.
    /// </summary>
    public double AngleTolerance => 2e-3;

    public void Run() => _graph.Compute();

    public void Reset() => _graph.Upload(_inputs.Qkv.As<float>(), _qkv, _inputs.Case.Tokens * RopeCase.TokenStride);

    public void Dispose() => _graph.Dispose();
}
