using LlmKernels.Interop;

namespace LlmKernels;

public static unsafe partial class CudaKernels
{
    /// <summary><c>destination[i] = activation(x[i])</c> on the device (<c>lk_cuda_apply_activation</c>), as
    /// <see cref="Kernels.Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>.</summary>
    /// <param name="x">Device pointer: <paramref name="length"/> elements of <paramref name="dataType"/>.</param>
    /// <param name="destination">Device pointer: <paramref name="length"/> elements; may be <paramref name="x"/> itself.</param>
    /// <param name="length">Elements; non-negative.</param>
    /// <param name="activation">The function.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void Activation(nint x, nint destination, long length, ActivationFunction activation, TensorDataType dataType,
                                  nint stream = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new ActivationParams
        {
            X = (void*)x, Y = (void*)destination, N = length, Activation = (Activation)activation,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaApplyActivation(stream, &p), "lk_cuda_apply_activation");
    }

    /// <summary>A gated linear unit over packed rows on the device (<c>lk_cuda_glu</c>): row <c>t</c> of <paramref name="x"/> holds
    /// gate and up (<paramref name="layout"/>), and <c>destination[t, i] = activation(gate[t, i]) * up[t, i]</c>.</summary>
    /// <param name="x">Device pointer: <c>[tokens, xStride]</c>, rows of <c>2 * d</c>.</param>
    /// <param name="destination">Device pointer: <c>[tokens, destinationStride]</c>, rows of <paramref name="d"/>.</param>
    /// <param name="tokens">Rows; non-negative.</param>
    /// <param name="d">Elements of an output row; positive.</param>
    /// <param name="activation">Applied to the gate.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="layout">Which half is the gate.</param>
    /// <param name="xStride">Elements between rows of <paramref name="x"/>; 0 means <c>2 * d</c>.</param>
    /// <param name="destinationStride">Elements between rows of <paramref name="destination"/>; 0 means <paramref name="d"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void Glu(nint x, nint destination, long tokens, long d, ActivationFunction activation, TensorDataType dataType,
                           GluLayout layout = GluLayout.GateFirst, long xStride = 0, long destinationStride = 0, nint stream = 0)
    {
        if (layout is not (GluLayout.GateFirst or GluLayout.UpFirst))
            throw new ArgumentOutOfRangeException(nameof(layout), layout, "Not a GluLayout value.");
        GluCore(x, 0, destination, tokens, d, activation, dataType,
                layout == GluLayout.UpFirst ? Interop.GluLayout.GluUpFirst : Interop.GluLayout.GluGateFirst, xStride, 0, destinationStride,
                stream);
    }

    /// <summary>A gated linear unit over separate gate and up on the device (<c>lk_cuda_glu</c>, split layout):
    /// <c>destination[t, i] = activation(gate[t, i]) * up[t, i]</c>.</summary>
    /// <param name="gate">Device pointer: <c>[tokens, gateStride]</c>, rows of <paramref name="d"/>.</param>
    /// <param name="up">Device pointer: <c>[tokens, upStride]</c>.</param>
    /// <param name="destination">Device pointer: <c>[tokens, destinationStride]</c>; may be <paramref name="gate"/> itself.</param>
    /// <param name="tokens">Rows; non-negative.</param>
    /// <param name="d">Elements per row; positive.</param>
    /// <param name="activation">Applied to the gate.</param>
    /// <param name="dataType">Float32, Float16 or BFloat16.</param>
    /// <param name="gateStride">Elements between rows of <paramref name="gate"/>; 0 means <paramref name="d"/>.</param>
    /// <param name="upStride">Elements between rows of <paramref name="up"/>; 0 means <paramref name="d"/>.</param>
    /// <param name="destinationStride">Elements between rows of <paramref name="destination"/>; 0 means <paramref name="d"/>.</param>
    /// <param name="stream">The <c>cudaStream_t</c>; 0 for CUDA's legacy default stream.</param>
    public static void GluSplit(nint gate, nint up, nint destination, long tokens, long d, ActivationFunction activation,
                                TensorDataType dataType, long gateStride = 0, long upStride = 0, long destinationStride = 0, nint stream = 0)
    {
        // The C struct calls the gate x: its messages would name x and xStride.
        if (gate == 0 && tokens > 0)
            throw new ArgumentException("A null device pointer.", nameof(gate));
        if (gateStride != 0 && gateStride < d)
            throw new ArgumentOutOfRangeException(nameof(gateStride), gateStride, $"Less than d ({d}); 0 means d.");
        GluCore(gate, up, destination, tokens, d, activation, dataType, Interop.GluLayout.GluSplit, gateStride, upStride, destinationStride,
                stream);
    }

    private static void GluCore(nint x, nint up, nint destination, long tokens, long d, ActivationFunction activation, TensorDataType dataType,
                                Interop.GluLayout layout, long xStride, long upStride, long destinationStride, nint stream)
    {
        CudaDevice.ThrowIfUnavailable();
        var p = new GluParams
        {
            X = (void*)x, Up = (void*)up, Out = (void*)destination, Tokens = tokens, D = d, XStride = xStride, UpStride = upStride,
            OutStride = destinationStride, Activation = (Activation)activation, Layout = layout,
            Dtype = TensorDataTypes.Float(dataType, nameof(dataType)),
        };
        NativeStatus.ThrowIfFailed(NativeMethods.CudaGlu(stream, &p), "lk_cuda_glu");
    }
}
