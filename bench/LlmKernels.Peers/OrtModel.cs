using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace LlmKernels.Peers;

/// <summary>
/// One of the one-node models of bench/models on ONNX Runtime's CPU execution provider, as every
/// ONNX Runtime peer runs it: the benchmark's thread count for the op, one inter-op thread,
/// sequential execution; every tensor an OrtValue over a native buffer this object owns, bound
/// once through an OrtIoBinding, so a call copies nothing and allocates nothing: it is one
/// RunWithBinding.
/// </summary>
public sealed unsafe class OrtModel : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions = new();
    private readonly List<OrtValue> _values = [];
    private readonly List<NativeBuffer> _buffers = [];

    /// <param name="file">The model's file name in bench/models (copied beside the assembly).</param>
    public OrtModel(string file, int threads)
    {
        // Same thread count as every other multi-threaded peer; one op, so nothing to run in parallel between ops.
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _session = new InferenceSession(ModelPath(file), options);
        _binding = _session.CreateIoBinding();
    }

    /// <summary>The version of the native ONNX Runtime loaded.</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>Where the models are copied beside the assembly (bench/models/*.onnx).</summary>
    public static string ModelPath(string file)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "models", file);
        if (!File.Exists(path))
            throw new FileNotFoundException($"ONNX model not found: {path} (bench/models/make_models.py writes it)", path);
        return path;
    }

    public static TensorElementType ElementType(BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => TensorElementType.Float,
        BenchDtype.F16 => TensorElementType.Float16,
        _ => TensorElementType.BFloat16,
    };

    /// <summary>Binds <paramref name="count"/> f32 values converted to <paramref name="dtype"/>, in a buffer of this model's own.</summary>
    public void BindInput(string name, float* values, long count, BenchDtype dtype, long[] shape) =>
        BindInput(name, Elements.ToBuffer(values, count, dtype), ElementType(dtype), shape);

    /// <summary>Binds a buffer this model then owns (disposed with it).</summary>
    public void BindInput(string name, NativeBuffer buffer, TensorElementType type, long[] shape) =>
        _binding.BindInput(name, Wrap(buffer, type, shape));

    /// <summary>Allocates and binds an output; the buffer stays valid until this model is disposed.</summary>
    public NativeBuffer BindOutput(string name, long bytes, TensorElementType type, long[] shape)
    {
        var buffer = new NativeBuffer(bytes);
        buffer.Touch();
        _binding.BindOutput(name, Wrap(buffer, type, shape));
        return buffer;
    }

    /// <summary>
    /// Binds an output over a buffer already bound as an input of this model: ONNX Runtime's
    /// GroupQueryAttention updates its KV cache in place when past_key and present_key are one buffer.
    /// </summary>
    public void BindOutput(string name, NativeBuffer boundInput, TensorElementType type, long[] shape) =>
        _binding.BindOutput(name, Wrap(boundInput, type, shape));

    public void Run() => _session.RunWithBinding(_runOptions, _binding);

    private OrtValue Wrap(NativeBuffer buffer, TensorElementType type, long[] shape)
    {
        _buffers.Add(buffer);
        var value = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, shape, (nint)buffer.Pointer, buffer.Bytes);
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
