namespace LlmKernels.Peers;

/// <summary>
/// RMSNorm as ONNX Runtime's CPU execution provider computes it: a one-node model of
/// <c>SimplifiedLayerNormalization</c>, or <c>SkipSimplifiedLayerNormalization</c> (com.microsoft) for
/// the fused residual add, made by bench/models/make_models.py. Both run natively in f32, f16 and
/// bf16 on the CPU EP of ONNX Runtime 1.31.1.
/// </summary>
public sealed unsafe class OrtRmsNormPeer : INormPeer
{
    private readonly OrtModel _model;
    private readonly NativeBuffer _y;
    private readonly NativeBuffer? _residualOut;

    public OrtRmsNormPeer(RmsNormInputs inputs, BenchDtype dtype, int threads)
    {
        Dtype = dtype;
        Threads = threads;
        var @case = inputs.Case;
        _model = new OrtModel($"{(@case.Fused ? "fused_add_rms_norm" : "rms_norm")}_{dtype.Name()}.onnx", threads);

        long[] rowsShape = [@case.Rows, @case.Hidden];
        var type = OrtModel.ElementType(dtype);
        _model.BindInput("x", inputs.X.As<float>(), @case.Elements, dtype, rowsShape);
        if (@case.Fused)
            _model.BindInput("residual", inputs.Residual!.As<float>(), @case.Elements, dtype, rowsShape);
        _model.BindInput("weight", inputs.Weight.As<float>(), @case.Hidden, dtype, [@case.Hidden]);
        _y = _model.BindOutput("y", @case.Elements * dtype.Size(), type, rowsShape);
        // The op writes the sum to its own output; binding it to the residual input would alias
        // an input with an output, which ONNX Runtime does not promise to handle.
        if (@case.Fused)
            _residualOut = _model.BindOutput("residual_out", @case.Elements * dtype.Size(), type, rowsShape);
    }

    public string Name => PeerNames.OnnxRuntime;
    public BenchDtype Dtype { get; }
    public int Threads { get; }
    public void* Y => _y.Pointer;
    public void* ResidualOut => _residualOut is null ? null : _residualOut.Pointer;

    public void Run() => _model.Run();

    public void Reset() { } // the residual input is never written

    public void Dispose() => _model.Dispose();
}
