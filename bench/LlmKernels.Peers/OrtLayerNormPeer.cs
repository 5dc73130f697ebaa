namespace LlmKernels.Peers;

/// <summary>
/// LayerNorm as ONNX Runtime's CPU execution provider computes it: a one-node model of the ONNX
/// operator <c>LayerNormalization</c> (opset 17), or <c>SkipLayerNormalization</c> (com.microsoft)
/// for the pre-norm residual add and, without its sum output, for post-norm with alpha 1, made by
/// bench/models/make_models.py. Whether an element type runs
/// is ONNX Runtime's to say: a type without a CPU kernel makes the session refuse the model, and the
/// peer reports itself unavailable with that reason.
/// </summary>
public sealed unsafe class OrtLayerNormPeer : INormPeer
{
    private readonly OrtModel _model;
    private readonly NativeBuffer _y;
    private readonly NativeBuffer? _residualOut;

    public OrtLayerNormPeer(LayerNormInputs inputs, BenchDtype dtype, int threads)
    {
        Dtype = dtype;
        Threads = threads;
        var @case = inputs.Case;
        _model = new OrtModel($"{@case.Kernel}_{dtype.Name()}.onnx", threads);

        long[] rowsShape = [@case.Rows, @case.Hidden];
        var type = OrtModel.ElementType(dtype);
        _model.BindInput("x", inputs.X.As<float>(), @case.Elements, dtype, rowsShape);
        if (@case.Fused || @case.Post)
            _model.BindInput("residual", inputs.Residual!.As<float>(), @case.Elements, dtype, rowsShape);
        _model.BindInput("weight", inputs.Weight.As<float>(), @case.Hidden, dtype, [@case.Hidden]);
        _model.BindInput("bias", inputs.Bias!.As<float>(), @case.Hidden, dtype, [@case.Hidden]);
        _y = _model.BindOutput("y", @case.Elements * dtype.Size(), type, rowsShape);
        // The op writes the sum to its own output (input_skip_bias_sum): binding it to the residual
        // input would alias an input with an output, which ONNX Runtime does not promise to handle.
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
