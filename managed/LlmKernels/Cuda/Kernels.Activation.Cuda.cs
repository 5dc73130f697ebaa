namespace LlmKernels;

// The activations and GLUs on a CUDA device: the span overloads' parameters, defaults and checks over device views.
public static partial class Kernels
{
    /// <summary>
    /// <c>destination[i] = activation(x[i])</c> on a CUDA device (<c>lk_cuda_apply_activation</c>): what
    /// <see cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/> computes, f32 math rounded once
    /// (docs/cuda.md lists where the GPU's exp, erf and tanh differ in the last bits). Queued on <paramref name="stream"/>.
    /// </summary>
    /// <param name="x">The input.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="activation">The function.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Activation<T>(DeviceSpan<T> x, DeviceSpan<T> destination, ActivationFunction activation,
                                     CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        DeviceChecks.SameLength(x.Length, destination.Length, nameof(x), nameof(destination));
        CheckActivation(activation);
        using var call = new DeviceCall(stream);
        DeviceRange xr = call.Range(x, nameof(x)), yr = call.Range(destination, nameof(destination));
        DeviceChecks.NoPartialOverlap(xr, yr, nameof(destination), nameof(x));
        if (x.IsEmpty)
            return;
        CudaKernels.Activation(xr.Address, yr.Address, x.Length, activation, dataType, call.Stream);
    }

    /// <summary>SiLU on a CUDA device: <c>destination = x * sigmoid(x)</c>.</summary>
    /// <inheritdoc cref="Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void Silu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Silu, stream);

    /// <summary>GELU on a CUDA device, exact or with the tanh approximation.</summary>
    /// <param name="x">The input.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself.</param>
    /// <param name="approximation">torch's <c>approximate</c>.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    public static void Gelu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, GeluApproximation approximation = GeluApproximation.None,
                               CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, GeluFunction(approximation), stream);

    /// <summary>ReLU on a CUDA device: <c>destination = max(x, 0)</c>, NaN kept.</summary>
    /// <inheritdoc cref="Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void Relu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Relu, stream);

    /// <summary>The logistic sigmoid on a CUDA device.</summary>
    /// <inheritdoc cref="Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void Sigmoid<T>(DeviceSpan<T> x, DeviceSpan<T> destination, CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Sigmoid, stream);

    /// <summary><c>destination = exp(x)</c> on a CUDA device.</summary>
    /// <inheritdoc cref="Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void Exp<T>(DeviceSpan<T> x, DeviceSpan<T> destination, CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Exp, stream);

    /// <summary><c>destination = tanh(x)</c> on a CUDA device.</summary>
    /// <inheritdoc cref="Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void Tanh<T>(DeviceSpan<T> x, DeviceSpan<T> destination, CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Tanh, stream);

    /// <summary><c>destination = erf(x)</c> on a CUDA device.</summary>
    /// <inheritdoc cref="Activation{T}(DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void Erf<T>(DeviceSpan<T> x, DeviceSpan<T> destination, CudaStream? stream = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Erf, stream);

    /// <summary>
    /// A gated linear unit over packed rows on a CUDA device (<c>lk_cuda_glu</c>): what
    /// <see cref="Glu{T}(ReadOnlySpan{T}, Span{T}, int, ActivationFunction, GluLayout, CpuContext?)"/> computes. Queued on <paramref name="stream"/>.
    /// </summary>
    /// <param name="x">The fused gate/up projection, <c>[tokens, 2 * d]</c>.</param>
    /// <param name="destination">The output, <c>[tokens, d]</c>; must not overlap <paramref name="x"/>.</param>
    /// <param name="d">Elements of the output row (the intermediate size); positive.</param>
    /// <param name="activation">Applied to the gate.</param>
    /// <param name="layout">Which half is the gate.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Glu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, int d, ActivationFunction activation,
                              GluLayout layout = GluLayout.GateFirst, CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        if (d <= 0)
            throw new ArgumentOutOfRangeException(nameof(d), d, "Must be positive.");
        long rowLength = 2L * d;
        if (x.Length % rowLength != 0)
            throw new ArgumentException($"Length {x.Length} is not a whole number of rows of 2 * d ({rowLength}).", nameof(x));
        long tokens = x.Length / rowLength;
        if (destination.Length != tokens * d)
            throw new ArgumentException($"Length {destination.Length} differs from tokens * d ({tokens * d}).", nameof(destination));
        CheckActivation(activation);
        if (layout != GluLayout.GateFirst && layout != GluLayout.UpFirst)
            throw new ArgumentOutOfRangeException(nameof(layout), layout, "Not a GluLayout value.");
        using var call = new DeviceCall(stream);
        DeviceRange xr = call.Range(x, nameof(x)), yr = call.Range(destination, nameof(destination));
        DeviceChecks.NoOverlap(yr, xr, nameof(destination), nameof(x));
        if (tokens == 0)
            return;
        CudaKernels.Glu(xr.Address, yr.Address, tokens, d, activation, dataType, layout, stream: call.Stream);
    }

    /// <summary>
    /// A gated linear unit over separate gate and up on a CUDA device (<c>lk_cuda_glu</c>, split layout): what
    /// <see cref="Glu{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/> computes.
    /// </summary>
    /// <param name="gate">The gate projection.</param>
    /// <param name="up">The up projection, as long as <paramref name="gate"/>; must not overlap it or <paramref name="destination"/>.</param>
    /// <param name="destination">The output, as long as <paramref name="gate"/>; may be <paramref name="gate"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="activation">Applied to the gate.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    /// <exception cref="ArgumentException">A length or overlap is wrong, or a buffer is on another device than the stream.</exception>
    /// <exception cref="ObjectDisposedException">A buffer viewed, or the stream, is disposed.</exception>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    public static void Glu<T>(DeviceSpan<T> gate, DeviceSpan<T> up, DeviceSpan<T> destination, ActivationFunction activation,
                              CudaStream? stream = null) where T : unmanaged
    {
        TensorDataType dataType = TensorDataTypes.Of<T>();
        DeviceChecks.SameLength(gate.Length, up.Length, nameof(gate), nameof(up));
        DeviceChecks.SameLength(gate.Length, destination.Length, nameof(gate), nameof(destination));
        CheckActivation(activation);
        using var call = new DeviceCall(stream);
        DeviceRange gr = call.Range(gate, nameof(gate)), ur = call.Range(up, nameof(up)), yr = call.Range(destination, nameof(destination));
        DeviceChecks.NoOverlap(ur, gr, nameof(up), nameof(gate));
        DeviceChecks.NoOverlap(yr, ur, nameof(destination), nameof(up));
        DeviceChecks.NoPartialOverlap(gr, yr, nameof(destination), nameof(gate));
        if (gate.IsEmpty)
            return;
        // Element-wise, so any row shape gives the same result: rows of SplitRow elements spread a long span over the grid's blocks
        // (a kernel may take a row a block), and one short row takes the rest.
        long n = gate.Length, rows = n / SplitRow, rest = n % SplitRow;
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (rows > 0)
            CudaKernels.GluSplit(gr.Address, ur.Address, yr.Address, rows, SplitRow, activation, dataType, stream: call.Stream);
        if (rest > 0)
        {
            nint offset = (nint)(rows * SplitRow * size);
            CudaKernels.GluSplit(gr.Address + offset, ur.Address + offset, yr.Address + offset, 1, rest, activation, dataType,
                                 stream: call.Stream);
        }
    }

    /// <summary>SwiGLU over packed rows on a CUDA device: <c>silu(gate) * up</c>.</summary>
    /// <inheritdoc cref="Glu{T}(DeviceSpan{T}, DeviceSpan{T}, int, ActivationFunction, GluLayout, CudaStream?)"/>
    public static void SwiGlu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, int d, GluLayout layout = GluLayout.GateFirst,
                                 CudaStream? stream = null) where T : unmanaged =>
        Glu(x, destination, d, ActivationFunction.Silu, layout, stream);

    /// <summary>SwiGLU over separate gate and up on a CUDA device.</summary>
    /// <inheritdoc cref="Glu{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void SwiGlu<T>(DeviceSpan<T> gate, DeviceSpan<T> up, DeviceSpan<T> destination, CudaStream? stream = null)
        where T : unmanaged =>
        Glu(gate, up, destination, ActivationFunction.Silu, stream);

    /// <summary>GeGLU over packed rows on a CUDA device: <c>gelu(gate) * up</c>.</summary>
    /// <param name="x">The fused gate/up projection, <c>[tokens, 2 * d]</c>.</param>
    /// <param name="destination">The output, <c>[tokens, d]</c>; must not overlap <paramref name="x"/>.</param>
    /// <param name="d">Elements of the output row; positive.</param>
    /// <param name="approximation">torch's <c>approximate</c> for the GELU.</param>
    /// <param name="layout">Which half is the gate.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    public static void GeGlu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, int d, GeluApproximation approximation = GeluApproximation.None,
                                GluLayout layout = GluLayout.GateFirst, CudaStream? stream = null) where T : unmanaged =>
        Glu(x, destination, d, GeluFunction(approximation), layout, stream);

    /// <summary>GeGLU over separate gate and up on a CUDA device.</summary>
    /// <param name="gate">The gate projection.</param>
    /// <param name="up">The up projection, as long as <paramref name="gate"/>.</param>
    /// <param name="destination">The output, as long as <paramref name="gate"/>; may be <paramref name="gate"/> itself.</param>
    /// <param name="approximation">torch's <c>approximate</c> for the GELU.</param>
    /// <param name="stream">The stream to queue the kernel on; CUDA's legacy default stream when null.</param>
    public static void GeGlu<T>(DeviceSpan<T> gate, DeviceSpan<T> up, DeviceSpan<T> destination,
                                GeluApproximation approximation = GeluApproximation.None, CudaStream? stream = null)
        where T : unmanaged =>
        Glu(gate, up, destination, GeluFunction(approximation), stream);

    /// <summary>ReGLU over packed rows on a CUDA device: <c>relu(gate) * up</c>.</summary>
    /// <inheritdoc cref="Glu{T}(DeviceSpan{T}, DeviceSpan{T}, int, ActivationFunction, GluLayout, CudaStream?)"/>
    public static void ReGlu<T>(DeviceSpan<T> x, DeviceSpan<T> destination, int d, GluLayout layout = GluLayout.GateFirst,
                                CudaStream? stream = null) where T : unmanaged =>
        Glu(x, destination, d, ActivationFunction.Relu, layout, stream);

    /// <summary>ReGLU over separate gate and up on a CUDA device.</summary>
    /// <inheritdoc cref="Glu{T}(DeviceSpan{T}, DeviceSpan{T}, DeviceSpan{T}, ActivationFunction, CudaStream?)"/>
    public static void ReGlu<T>(DeviceSpan<T> gate, DeviceSpan<T> up, DeviceSpan<T> destination, CudaStream? stream = null)
        where T : unmanaged =>
        Glu(gate, up, destination, ActivationFunction.Relu, stream);
}
