namespace LlmKernels.Peers;

/// <summary>
/// MoE permute and combine as llama.cpp would compose them from ggml 0.18.0's CPU ops (f32: <c>ggml_get_rows</c>
/// writes f32 rows whatever it reads), from the reference plan:
/// <list type="bullet">
/// <item>permute: <c>ggml_get_rows(x, idx)</c>, x <c>ne = [hidden, tokens]</c>, idx the token of each expert-ordered
/// row (<c>sorted_slots[r] / k</c>, int32): the gather that fills the expert-ordered buffer, <c>[hidden, tokens * k]</c>;</item>
/// <item>combine: the tail of <c>llm_graph_context::build_moe_ffn</c> (src/llama-graph.cpp). llama.cpp's
/// <c>ggml_mul_mat_id</c> writes the expert outputs straight into <c>[hidden, k, tokens]</c>; from expert order
/// that layout is <c>ggml_reshape_3d(ggml_get_rows(e, slot_rows), hidden, k, tokens)</c>, e <c>[hidden, tokens * k]</c>;
/// then, as build_moe_ffn: <c>ggml_mul</c> by the weights <c>[1, k, tokens]</c>, one <c>ggml_view_2d</c> per slot
/// (<c>[hidden, tokens]</c>, row stride <c>nb[2]</c>, offset <c>j * nb[1]</c>), and the k views summed by k - 1
/// <c>ggml_add</c>s. Each op rounds to f32: three passes over <c>[hidden, k, tokens]</c> where LlmKernels makes one.</item>
/// </list>
/// </summary>
public sealed unsafe class GgmlMoePermutePeer : IMoePermutePeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _output;

    public GgmlMoePermutePeer(GgmlLibrary ggml, MoePermuteInputs inputs, int threads)
    {
        Threads = threads;
        var c = inputs.Case;
        long tokens = c.Tokens, hidden = c.Hidden, rows = c.Rows;
        int k = c.TopK;
        if (c.Combine && k < 2)
            throw new NotSupportedException("build_moe_ffn's tail with k = 1 is one ggml_cont of the view, not composed here");
        var plan = inputs.Plan;
        long rowBytes = hidden * sizeof(float);
        long data = c.Combine
            ? 3 * rows * rowBytes + (k - 1) * tokens * rowBytes + rows * (sizeof(int) + sizeof(float)) // e, gathered, weighted, the sums
            : (tokens + rows) * rowBytes + rows * sizeof(int);                                         // x, the expert-ordered rows
        _graph = new GgmlGraph(ggml, data, 16 + 2 * k);
        nint ctx = _graph.Context;

        nint source = _graph.NewF32(hidden, inputs.SourceRows);
        _graph.Upload(inputs.Source.As<float>(), source, inputs.SourceRows * hidden);
        nint index = ggml.NewTensor1d(ctx, GgmlLibrary.TypeI32, rows);
        int* idx = (int*)_graph.Data(index);
        if (c.Combine)
        {
            for (long s = 0; s < rows; s++)
                idx[s] = plan.SlotRows[s];
            nint weights = ggml.NewTensor3d(ctx, GgmlLibrary.TypeF32, 1, k, tokens);
            _graph.Upload(inputs.Weights.As<float>(), weights, rows);
            nint experts = ggml.Reshape3d(ctx, ggml.GetRows(ctx, source, index), hidden, k, tokens); // [hidden, k, tokens]
            experts = ggml.Mul(ctx, experts, weights);                                                // broadcast over hidden
            nint sum = 0;
            for (int j = 0; j < k; j++)
            {
                nint view = ggml.View2d(ctx, experts, hidden, tokens, (nuint)(k * rowBytes), (nuint)(j * rowBytes));
                sum = j == 0 ? view : ggml.Add(ctx, sum, view);
            }
            _output = sum;
        }
        else
        {
            for (long r = 0; r < rows; r++)
                idx[r] = plan.SortedSlots[r] / k;
            _output = ggml.GetRows(ctx, source, index); // [hidden, rows]
        }
        _graph.Build(threads, _output);
    }

    public string Name => PeerNames.Ggml;
    public BenchDtype Dtype => BenchDtype.F32;
    public int Threads { get; }
    public void* Out => _graph.Data(_output);

    public void Run() => _graph.Compute();

    public void Reset() { } // inputs are only read

    public void Dispose() => _graph.Dispose();
}
