using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace LlmKernels.Peers;

/// <summary>
/// RMSNorm as ONNX Runtime's CPU execution provider computes it: a one-node model of
/// <c>SimplifiedLayerNormalization</c>, or <c>SkipSimplifiedLayerNormalization</c> (com.microsoft) for
/// the fused residual add, made by bench/models/make_models.py. Both run natively in f32, f16 and
/// bf16 on the CPU EP of ONNX Runtime 1.31.1.
/// Every tensor is an OrtValue over this peer's own native buffers, bound once through an
/// OrtIoBinding, so a call copies nothing and allocates nothing: it is one RunWithBinding.
/// </summary>
public sealed unsafe class OrtRmsNormPeer : IRmsNormPeer
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions = new();
    private readonly List<OrtValue> _values = [];
    private readonly List<NativeBuffer> _buffers = [];
    private readonly NativeBuffer _y;
    private readonly NativeBuffer? _residualOut;

    public OrtRmsNormPeer(RmsNormInputs inputs, BenchDtype dtype, int threads)
    {
        Dtype = dtype;
        Threads = threads;
        var @case = inputs.Case;
        string model = ModelPath(@case.Fused, dtype);

        // Same thread count as every other multi-threaded peer; one op, so nothing to run in parallel between ops.
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _session = new InferenceSession(model, options);
        _binding = _session.CreateIoBinding();

        long[] rowsShape = [@case.Rows, @case.Hidden];
        _binding.BindInput("x", Wrap(Own(Elements.ToBuffer(inputs.X.As<float>(), @case.Elements, dtype)), rowsShape));
        if (@case.Fused)
        {
            _binding.BindInput("residual", Wrap(Own(Elements.ToBuffer(inputs.Residual!.As<float>(), @case.Elements, dtype)), rowsShape));
        }
        _binding.BindInput("weight", Wrap(Own(Elements.ToBuffer(inputs.Weight.As<float>(), @case.Hidden, dtype)), [@case.Hidden]));
        _y = Own(new NativeBuffer(@case.Elements * dtype.Size()));
        _binding.BindOutput("y", Wrap(_y, rowsShape));
        if (@case.Fused)
        {
            // The op writes the sum to its own output; binding it to the residual input would alias
            // an input with an output, which ONNX Runtime does not promise to handle.
            _residualOut = Own(new NativeBuffer(@case.Elements * dtype.Size()));
            _binding.BindOutput("residual_out", Wrap(_residualOut, rowsShape));
        }
    }

    public string Name => "onnxruntime";
    public BenchDtype Dtype { get; }
    public int Threads { get; }
    public void* Y => _y.Pointer;
    public void* ResidualOut => _residualOut is null ? null : _residualOut.Pointer;

    public void Run() => _session.RunWithBinding(_runOptions, _binding);

    public void Reset() { } // the residual input is never written

    /// <summary>The version of the native ONNX Runtime loaded.</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>Where the models are copied beside the assembly (bench/models/*.onnx).</summary>
    public static string ModelPath(bool fused, BenchDtype dtype)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "models", $"{(fused ? "fused_add_rms_norm" : "rms_norm")}_{dtype.Name()}.onnx");
        if (!File.Exists(path))
            throw new FileNotFoundException($"ONNX model not found: {path} (bench/models/make_models.py writes it)", path);
        return path;
    }

    private NativeBuffer Own(NativeBuffer buffer)
    {
        _buffers.Add(buffer);
        return buffer;
    }

    private OrtValue Wrap(NativeBuffer buffer, long[] shape)
    {
        var elementType = Dtype switch
        {
            BenchDtype.F32 => TensorElementType.Float,
            BenchDtype.F16 => TensorElementType.Float16,
            _ => TensorElementType.BFloat16,
        };
        var value = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, elementType, shape, (nint)buffer.Pointer, buffer.Bytes);
        _values.Add(value);
        return value;
    }

    public void Dispose()
    {
        // The session first: its intra-op threads spin for a while after a run and would steal
        // cycles from whatever is measured next.
        _binding.Dispose();
        _session.Dispose();
        _runOptions.Dispose();
        foreach (var value in _values)
            value.Dispose();
        foreach (var buffer in _buffers)
            buffer.Dispose();
        _values.Clear();
        _buffers.Clear();
    }
}
