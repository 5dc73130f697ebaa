namespace LlmKernels.Peers;

/// <summary>
/// RoPE as ggml applies it to a fused qkv projection on the CPU: one <c>ggml_view_3d</c> view of the
/// q and k heads of each token (side by side in the fused row: 40 heads of 128, tokens
/// (32 + 2*8) * 128 apart) inside one [tokens, 6144] tensor, rotated in place by
/// <c>ggml_rope_ext_inplace</c> (mode GGML_ROPE_TYPE_NEOX, n_dims 128, freq_base 500000,
/// freq_scale 1, ext_factor 0, attn_factor 1: plain RoPE). One node rather than llama.cpp's two
/// (Qcur, Kcur): every ggml thread computes the sin/cos of every token in each rope node, so a
/// second node costs ggml another full pass of sin/cos; one node is ggml's best on this layout.
/// ggml computes the angles from the positions in f32 and reads no cache. f32: ggml's CPU rope
/// takes f32 and f16, not bf16. GPT-J pairing is ggml's "normal" mode 0.
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
        nint qk = ggml.View3d(context, _qkv, RopeCase.HeadDim, RopeCase.QHeads + RopeCase.KvHeads, tokens, (nuint)head, (nuint)row, 0);
        _graph.Build(threads, ggml.RopeExtInplace(context, qk, positions, 0, (int)RopeCase.RotDim,
            inputs.Case.Gptj ? GgmlLibrary.RopeModeNormal : GgmlLibrary.RopeModeNeox,
            0, (float)RopeCase.Base, 1f, 0f, 1f, 32f, 1f));
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
