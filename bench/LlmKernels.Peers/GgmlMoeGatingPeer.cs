namespace LlmKernels.Peers;

/// <summary>
/// MoE gating as llama.cpp's <c>llm_graph_context::build_moe_ffn</c> builds it on the CPU, up to the expert FFNs
/// (ggml 0.18.0's ops, f32: its soft_max and sigmoid take f32 rows), logits <c>L</c> <c>[experts, tokens]</c>:
/// <list type="bullet">
/// <item>softmax-then-top-k: <c>p = ggml_soft_max(L)</c>; <c>ids = ggml_argsort_top_k(p, k)</c>;
/// <c>w = ggml_get_rows(ggml_reshape_3d(p, 1, experts, tokens), ids)</c>;</item>
/// <item>top-k-then-softmax: <c>ids = ggml_argsort_top_k(L, k)</c>, <c>ggml_get_rows</c> of the logits, then
/// <c>ggml_soft_max</c> of those k (build_moe_ffn's SOFTMAX_WEIGHT gating; llama.cpp runs Mixtral itself as a full
/// softmax, top k and renormalisation, the same numbers);</item>
/// <item>DeepSeek-V3: <c>p = ggml_sigmoid(L)</c>, <c>s = ggml_add(p, bias)</c>; groups as build_moe_ffn selects them
/// (<c>ggml_argsort_top_k(s, 2)</c> of each group's 32, <c>ggml_get_rows</c> and <c>ggml_sum_rows</c> of those two,
/// <c>ggml_argsort_top_k</c> of the 8 group scores to 4, <c>ggml_get_rows</c> of the kept groups'
/// scores <c>ggml_set_rows</c> into a <c>ggml_fill</c> of -inf); <c>ids = ggml_argsort_top_k</c> of the masked scores;
/// <c>w = ggml_get_rows(p, ids)</c>, <c>ggml_div</c> by its <c>ggml_sum_rows</c> (<c>ggml_clamp</c>ed to 2^-14 as
/// llama.cpp does), <c>ggml_scale</c> by 2.5.</item>
/// </list>
/// <c>ggml_argsort_top_k</c> is a full descending <c>ggml_argsort</c> of each row (std::sort), viewed to its first
/// k: the ids are that view, a row of the argsort apart. The ids come out in selection order (by p + bias), not by
/// weight, and exact ties in std::sort's order: checked as a set (<see cref="IMoeGatingPeer.ContractOrder"/>).
/// </summary>
public sealed unsafe class GgmlMoeGatingPeer : IMoeGatingPeer
{
    private readonly GgmlGraph _graph;
    private readonly nint _ids, _weights;

    public GgmlMoeGatingPeer(GgmlLibrary ggml, MoeGatingInputs inputs, int threads)
    {
        Threads = threads;
        var c = inputs.Case;
        var scheme = c.Scheme;
        long tokens = c.Tokens, experts = c.Experts;
        int k = c.TopK;
        // Every intermediate holds its own data in the arena: at most about eight [experts, tokens] tensors.
        _graph = new GgmlGraph(ggml, 10 * tokens * experts * sizeof(float), 40);
        nint ctx = _graph.Context;
        nint logits = _graph.NewF32(experts, tokens);
        _graph.Upload(inputs.Logits.As<float>(), logits, tokens * experts);

        nint weights;
        if (scheme.Scoring == MoeScoring.TopKSoftmax)
        {
            _ids = ggml.ArgsortTopK(ctx, logits, k);
            weights = ggml.GetRows(ctx, ggml.Reshape3d(ctx, logits, 1, experts, tokens), _ids); // [1, k, tokens]
            weights = ggml.SoftMax(ctx, ggml.Reshape2d(ctx, weights, k, tokens));
        }
        else
        {
            nint probs = scheme.Scoring == MoeScoring.Sigmoid ? ggml.Sigmoid(ctx, logits) : ggml.SoftMax(ctx, logits);
            nint selection = probs;
            if (inputs.Bias is { } bias)
            {
                nint b = _graph.NewF32(experts);
                _graph.Upload(bias.As<float>(), b, experts);
                selection = ggml.Add(ctx, probs, b); // broadcast over the tokens
            }
            if (scheme.Grouped)
                selection = KeepBestGroups(ggml, ctx, selection, scheme, experts, tokens);
            _ids = ggml.ArgsortTopK(ctx, selection, k);
            weights = ggml.GetRows(ctx, ggml.Reshape3d(ctx, probs, 1, experts, tokens), _ids); // [1, k, tokens]
            if (scheme.Renormalize)
            {
                weights = ggml.Reshape2d(ctx, weights, k, tokens);
                nint sum = ggml.Clamp(ctx, ggml.SumRows(ctx, weights), 6.103515625e-5f, float.PositiveInfinity);
                weights = ggml.Div(ctx, weights, sum);
            }
            if (scheme.RoutedScaling != 0 && scheme.RoutedScaling != 1)
                weights = ggml.Scale(ctx, weights, scheme.RoutedScaling);
        }
        _weights = weights;
        IdsStride = experts; // the ids are the first k of each row of the full argsort
        _graph.Build(threads, _weights, _ids);
    }

    /// <summary>
    /// build_moe_ffn's group limit: <paramref name="selection"/> <c>[experts, tokens]</c> with every expert outside
    /// the best groups set to -inf.
    /// </summary>
    private static nint KeepBestGroups(GgmlLibrary ggml, nint ctx, nint selection, MoeGatingScheme scheme, long experts, long tokens)
    {
        long groups = scheme.Groups, perGroup = experts / groups;
        nint grouped = ggml.Reshape3d(ctx, selection, perGroup, groups, tokens);                  // [per group, groups, tokens]
        nint top2 = ggml.ArgsortTopK(ctx, grouped, 2);                                             // [2, groups, tokens]
        nint scores = ggml.GetRows(ctx, ggml.Reshape4d(ctx, grouped, 1, perGroup, groups, tokens), top2); // [1, 2, groups, tokens]
        scores = ggml.SumRows(ctx, ggml.Reshape3d(ctx, scores, 2, groups, tokens));                 // [1, groups, tokens]
        scores = ggml.Reshape2d(ctx, scores, groups, tokens);                                      // [groups, tokens]
        nint keep = ggml.ArgsortTopK(ctx, scores, scheme.KeptGroups);                              // [kept, tokens]
        nint keptScores = ggml.GetRows(ctx, grouped, keep);                                        // [per group, kept, tokens]
        nint masked = ggml.SetRows(ctx, ggml.Fill(ctx, grouped, float.NegativeInfinity), keptScores, keep);
        return ggml.Reshape2d(ctx, masked, experts, tokens);
    }

    public string Name => PeerNames.Ggml;
    public BenchDtype Dtype => BenchDtype.F32;
    public int Threads { get; }
    public int* Ids => (int*)_graph.Data(_ids);
    public long IdsStride { get; }
    public float* Weights => (float*)_graph.Data(_weights);
    public bool ContractOrder => false;

    public void Run() => _graph.Compute();

    public void Reset() { } // inputs are only read

    public void Dispose() => _graph.Dispose();
}
