namespace LlmKernels.Peers;

/// <summary>
/// Attention as llama.cpp runs it on the CPU: one <c>ggml_flash_attn_ext</c> node (scale
/// 1/sqrt(128), no ALiBi, no soft cap) with q f32 and K, V f16, ggml's fast path (its KV cache is
/// f16 by default), as ggml_peers.c times it. Tensors are ggml's head-major
/// <c>[batch][heads][tokens][head_dim]</c> (ne = [128, tokens, heads, batch]); the result comes out
/// token-major <c>[batch][tokens][32][128]</c> f32. A prefill passes a causal f16 mask
/// <c>[tokens, tokens]</c> (0 or -inf); a decode passes none and gives each sequence its K and V
/// contiguous: ggml has no paged cache, and is charged the bytes of its own f16 K and V.
/// </summary>
public sealed unsafe class GgmlAttentionPeer : IAttentionPeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _out;

    public GgmlAttentionPeer(GgmlLibrary ggml, AttentionInputs inputs, int threads)
    {
        Threads = threads;
        var c = inputs.Case;
        const long dim = AttentionCase.HeadDim;
        long sq = c.QueryTokens, sk = c.Context, batch = c.Batch;
        long maskBytes = c.Decode ? 0 : sq * sk * sizeof(ushort);
        _graph = new GgmlGraph(ggml, 2 * c.QueryElements * sizeof(float) + 2 * c.KvElements * sizeof(ushort) + maskBytes, 8);
        nint context = _graph.Context;
        nint q = ggml.NewTensor4d(context, GgmlLibrary.TypeF32, dim, sq, AttentionCase.QHeads, batch);
        nint k = ggml.NewTensor4d(context, GgmlLibrary.TypeF16, dim, sk, AttentionCase.KvHeads, batch);
        nint v = ggml.NewTensor4d(context, GgmlLibrary.TypeF16, dim, sk, AttentionCase.KvHeads, batch);

        float* qData = (float*)_graph.Data(q);
        for (long b = 0; b < batch; b++)
            for (long t = 0; t < sq; t++)
                for (long h = 0; h < AttentionCase.QHeads; h++)
                    Buffer.MemoryCopy(inputs.Q.As<float>() + ((b * sq + t) * AttentionCase.QHeads + h) * dim,
                                      qData + ((b * AttentionCase.QHeads + h) * sq + t) * dim, dim * sizeof(float), dim * sizeof(float));
        Half* kData = (Half*)_graph.Data(k), vData = (Half*)_graph.Data(v);
        // Up to 1 GiB of f16 at 32768 keys x 8 sequences: converted on every core.
        Parallel.For(0, batch * AttentionCase.KvHeads, pair =>
        {
            long b = pair / AttentionCase.KvHeads, kvHead = pair % AttentionCase.KvHeads;
            Span<float> head = stackalloc float[(int)dim];
            for (long j = 0; j < sk; j++)
            {
                long at = ((b * AttentionCase.KvHeads + kvHead) * sk + j) * dim;
                inputs.KeyHead(b, j, kvHead, head);
                for (int d = 0; d < dim; d++)
                    kData[at + d] = (Half)head[d]; // exact: TestData values are f16 values
                inputs.ValueHead(b, j, kvHead, head);
                for (int d = 0; d < dim; d++)
                    vData[at + d] = (Half)head[d];
            }
        });

        nint mask = 0;
        if (!c.Decode)
        {
            mask = ggml.NewTensor2d(context, GgmlLibrary.TypeF16, sk, sq);
            Half* m = (Half*)_graph.Data(mask);
            for (long i = 0; i < sq; i++)
                for (long j = 0; j < sk; j++)
                    m[i * sk + j] = j <= i + sk - sq ? Half.Zero : Half.NegativeInfinity;
        }
        _out = ggml.FlashAttnExt(context, q, k, v, mask, AttentionCase.Scale, 0f, 0f);
        _graph.Build(threads, _out);
    }

    public string Name => PeerNames.Ggml;
    public BenchDtype Dtype => BenchDtype.F16;
    public BenchDtype OutputDtype => BenchDtype.F32;
    public int Threads { get; }
    public void* Output => _graph.Data(_out);

    /// <summary>
    /// ggml rounds q to f16 for its f16 dot products (exact here) and, on this path, accumulates the
    /// weighted values in f16: its error is an f16 one, though its output is f32.
    /// </summary>
    public double Tolerance => ErrorTracker.Tolerance(BenchDtype.F16);

    public void Run() => _graph.Compute();

    public void Reset() { } // inputs are only read

    public void Dispose() => _graph.Dispose();
}
