namespace LlmKernels.Peers;

/// <summary>
/// One SwiGLU measurement: <c>out[t, i] = silu(gate[t, i]) * up[t, i]</c> for i &lt; d, with gate and
/// up either packed as the two halves of one [tokens, 2*d] row, gate first (vLLM's silu_and_mul),
/// or as two separate [tokens, d] tensors (split). Shapes are written [tokens, 2*d] in both layouts.
/// </summary>
public sealed record SwiGluCase(bool Split, BenchDtype Dtype, long Tokens, long D) : IBenchCase
{
    public string Family => "swiglu";

    public string Kernel => Split ? "swiglu_split" : "swiglu";

    /// <summary>Elements of the output (and of each of gate and up).</summary>
    public long Elements => Tokens * D;

    public IReadOnlyList<long> Shape => [Tokens, 2 * D];

    public string ShapeText => $"{Tokens}x2*{D}";

    /// <summary>ONNX Runtime has no SwiGLU op on the CPU (no standard op, no com.microsoft kernel).</summary>
    public IReadOnlyList<string> Peers { get; } = [PeerNames.Ggml, PeerNames.TensorPrimitives, PeerNames.Naive];

    /// <summary>ggml's CPU GLU ops run f32 and f16, not bf16: its bf16 comparison is its f32 run.</summary>
    public BenchDtype DtypeFor(string peer) => peer == PeerNames.Ggml ? BenchDtype.F32 : Dtype;

    /// <summary>Gate and up read, out written: 3 * tokens * d elements, in either layout.</summary>
    public long BytesAt(BenchDtype dtype) => 3 * Elements * dtype.Size();

    public long BytesFor(string peer) => BytesAt(DtypeFor(peer));

    public IBenchWorkload Prepare() => SwiGluInputs.Create(this);

    /// <summary>d = 14336: Llama 3 8B's and Mistral 7B's intermediate size.</summary>
    public const long IntermediateSize = 14336;

    /// <summary>One decode token (latency) and the DRAM-resident prefill of the bar.</summary>
    public static IReadOnlyList<long> StandardTokens { get; } = [1, 4096];

    public static IEnumerable<SwiGluCase> Cases(bool quick) =>
        from split in new[] { false, true }
        from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
        from tokens in StandardTokens.Reverse()
        select new SwiGluCase(split, dtype, tokens, IntermediateSize);
}
