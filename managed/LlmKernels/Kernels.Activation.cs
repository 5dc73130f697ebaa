using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>An element-wise function of <see cref="Kernels.Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/> and <see cref="Kernels.Glu{T}(ReadOnlySpan{T}, Span{T}, int, ActivationFunction, GluLayout, CpuContext?)"/>.</summary>
/// <remarks>Computed in f32 with the library's vectorised exp, erf and tanh; their maximum errors in
/// ulps against float64, and the values at infinities and NaN, are listed in docs/activations.md.</remarks>
public enum ActivationFunction
{
    /// <summary>SiLU (swish): <c>x * sigmoid(x)</c>. Its GLU is SwiGLU.</summary>
    Silu = 0,
    /// <summary>GELU, exact: <c>0.5 x (1 + erf(x / sqrt 2))</c> (torch <c>approximate='none'</c>). Its GLU is GeGLU.</summary>
    GeluErf = 1,
    /// <summary>GELU, tanh approximation: <c>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³)))</c> (torch <c>approximate='tanh'</c>).</summary>
    GeluTanh = 2,
    /// <summary>ReLU: <c>max(x, 0)</c>, NaN kept. Its GLU is ReGLU.</summary>
    Relu = 3,
    /// <summary>The logistic sigmoid <c>1 / (1 + exp(-x))</c>.</summary>
    Sigmoid = 4,
    /// <summary><c>exp(x)</c>: overflow gives +infinity, underflow 0.</summary>
    Exp = 5,
    /// <summary><c>tanh(x)</c>.</summary>
    Tanh = 6,
    /// <summary>The error function <c>erf(x)</c>.</summary>
    Erf = 7,
}

/// <summary>Which GELU: torch's <c>approximate</c> argument.</summary>
public enum GeluApproximation
{
    /// <summary>The exact form with erf.</summary>
    None = 0,
    /// <summary>The tanh approximation.</summary>
    Tanh = 1,
}

/// <summary>Where gate and up sit in a packed <c>[tokens, 2*d]</c> row.</summary>
public enum GluLayout
{
    /// <summary><c>[gate | up]</c>: vLLM's <c>silu_and_mul</c> and <c>gelu_and_mul</c>, HF's fused <c>gate_up_proj</c>.</summary>
    GateFirst = 0,
    /// <summary><c>[up | gate]</c>: vLLM's <c>mul_and_silu</c>.</summary>
    UpFirst = 1,
}

public static partial class Kernels
{
    /// <summary>
    /// <c>destination[i] = activation(x[i])</c>, f32 math, rounded to <typeparamref name="T"/> once.
    /// </summary>
    /// <param name="x">The input.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="activation">The function.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static unsafe void Activation<T>(ReadOnlySpan<T> x, Span<T> destination, ActivationFunction activation,
                                           CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        SpanChecks.SameLength<T, T>(x, destination, nameof(x), nameof(destination));
        SpanChecks.NoPartialOverlap<T>(x, destination, nameof(destination), nameof(x));
        CheckActivation(activation);
        if (x.IsEmpty)
            return;
        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* xPtr = x)
        fixed (T* yPtr = destination)
        {
            var p = new ActivationParams { X = xPtr, Y = yPtr, N = x.Length, Activation = (Activation)activation, Dtype = dtype };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.ApplyActivation(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_apply_activation");
        }
    }

    /// <summary>SiLU: <c>destination = x * sigmoid(x)</c>.</summary>
    /// <inheritdoc cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void Silu<T>(ReadOnlySpan<T> x, Span<T> destination, CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Silu, context);

    /// <summary>GELU, exact or with the tanh approximation.</summary>
    /// <param name="x">The input.</param>
    /// <param name="destination">The output, as long as <paramref name="x"/>; may be <paramref name="x"/> itself.</param>
    /// <param name="approximation">torch's <c>approximate</c>: <see cref="GeluApproximation.None"/> (erf) or <see cref="GeluApproximation.Tanh"/>.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void Gelu<T>(ReadOnlySpan<T> x, Span<T> destination, GeluApproximation approximation = GeluApproximation.None,
                               CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, GeluFunction(approximation), context);

    /// <summary>ReLU: <c>destination = max(x, 0)</c>, NaN kept.</summary>
    /// <inheritdoc cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void Relu<T>(ReadOnlySpan<T> x, Span<T> destination, CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Relu, context);

    /// <summary>The logistic sigmoid.</summary>
    /// <inheritdoc cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void Sigmoid<T>(ReadOnlySpan<T> x, Span<T> destination, CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Sigmoid, context);

    /// <summary><c>destination = exp(x)</c>.</summary>
    /// <inheritdoc cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void Exp<T>(ReadOnlySpan<T> x, Span<T> destination, CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Exp, context);

    /// <summary><c>destination = tanh(x)</c>.</summary>
    /// <inheritdoc cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void Tanh<T>(ReadOnlySpan<T> x, Span<T> destination, CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Tanh, context);

    /// <summary><c>destination = erf(x)</c>.</summary>
    /// <inheritdoc cref="Activation{T}(ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void Erf<T>(ReadOnlySpan<T> x, Span<T> destination, CpuContext? context = null) where T : unmanaged =>
        Activation(x, destination, ActivationFunction.Erf, context);

    /// <summary>
    /// A gated linear unit over packed rows: each row of <paramref name="x"/> holds gate and up,
    /// <c>2 * d</c> elements, and <c>destination[t, i] = activation(gate[t, i]) * up[t, i]</c>
    /// (f32 math, rounded once).
    /// </summary>
    /// <param name="x">The fused gate/up projection, <c>[tokens, 2 * d]</c>.</param>
    /// <param name="destination">The output, <c>[tokens, d]</c>; must not overlap <paramref name="x"/>.</param>
    /// <param name="d">Elements of the output row (the intermediate size); positive.</param>
    /// <param name="activation">Applied to the gate: <see cref="ActivationFunction.Silu"/> for SwiGLU, a GELU for GeGLU, <see cref="ActivationFunction.Relu"/> for ReGLU.</param>
    /// <param name="layout">Which half is the gate.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static unsafe void Glu<T>(ReadOnlySpan<T> x, Span<T> destination, int d, ActivationFunction activation,
                                     GluLayout layout = GluLayout.GateFirst, CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        if (d <= 0)
            throw new ArgumentOutOfRangeException(nameof(d), d, "Must be positive.");
        long rowLength = 2L * d;
        if (x.Length % rowLength != 0)
            throw new ArgumentException($"Length {x.Length} is not a whole number of rows of 2 * d ({rowLength}).", nameof(x));
        int tokens = (int)(x.Length / rowLength);
        if ((long)destination.Length != (long)tokens * d)
            throw new ArgumentException($"Length {destination.Length} differs from tokens * d ({(long)tokens * d}).", nameof(destination));
        SpanChecks.NoOverlap<T, T>(destination, x, nameof(destination), nameof(x));
        CheckActivation(activation);
        if (layout != GluLayout.GateFirst && layout != GluLayout.UpFirst)
            throw new ArgumentOutOfRangeException(nameof(layout), layout, "Not a GluLayout value.");
        if (tokens == 0)
            return;
        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* xPtr = x)
        fixed (T* outPtr = destination)
        {
            var p = new GluParams
            {
                X = xPtr, Out = outPtr, Tokens = tokens, D = d, Activation = (Activation)activation,
                Layout = layout == GluLayout.UpFirst ? Interop.GluLayout.GluUpFirst : Interop.GluLayout.GluGateFirst, Dtype = dtype,
            };
            Status status;
            using (var lease = ctx.Acquire())
                status = NativeMethods.Glu(lease.Handle, &p);
            NativeStatus.ThrowIfFailed(status, "lk_glu");
        }
    }

    /// <summary>
    /// A gated linear unit over separate tensors: <c>destination[i] = activation(gate[i]) * up[i]</c>
    /// (f32 math, rounded once).
    /// </summary>
    /// <param name="gate">The gate projection.</param>
    /// <param name="up">The up projection, as long as <paramref name="gate"/>; must not overlap it or <paramref name="destination"/>.</param>
    /// <param name="destination">The output, as long as <paramref name="gate"/>; may be <paramref name="gate"/> itself (in place) but must not partially overlap it.</param>
    /// <param name="activation">Applied to the gate: <see cref="ActivationFunction.Silu"/> for SwiGLU, a GELU for GeGLU, <see cref="ActivationFunction.Relu"/> for ReGLU.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static unsafe void Glu<T>(ReadOnlySpan<T> gate, ReadOnlySpan<T> up, Span<T> destination, ActivationFunction activation,
                                     CpuContext? context = null) where T : unmanaged
    {
        Dtype dtype = ElementType.Of<T>();
        SpanChecks.SameLength<T, T>(gate, up, nameof(gate), nameof(up));
        SpanChecks.SameLength<T, T>(gate, destination, nameof(gate), nameof(destination));
        SpanChecks.NoOverlap<T, T>(up, gate, nameof(up), nameof(gate));
        SpanChecks.NoOverlap<T, T>(destination, up, nameof(destination), nameof(up));
        SpanChecks.NoPartialOverlap<T>(gate, destination, nameof(destination), nameof(gate));
        CheckActivation(activation);
        if (gate.IsEmpty)
            return;
        CpuContext ctx = CpuContext.Resolve(context);
        fixed (T* gatePtr = gate)
        fixed (T* upPtr = up)
        fixed (T* outPtr = destination)
        {
            // Element-wise, so any row shape gives the same result: rows of SplitRow elements let
            // the native side spread a long span over its threads, and one short row takes the rest.
            long n = gate.Length, rows = n / SplitRow, rest = n % SplitRow;
            Status status = Status.Ok;
            using (var lease = ctx.Acquire())
            {
                if (rows > 0)
                    status = GluSplit(lease.Handle, gatePtr, upPtr, outPtr, rows, SplitRow, activation, dtype);
                if (status == Status.Ok && rest > 0)
                {
                    long offset = rows * SplitRow;
                    status = GluSplit(lease.Handle, gatePtr + offset, upPtr + offset, outPtr + offset, 1, rest, activation, dtype);
                }
            }
            NativeStatus.ThrowIfFailed(status, "lk_glu");
        }
    }

    /// <summary>SwiGLU over packed rows: <c>silu(gate) * up</c>.</summary>
    /// <inheritdoc cref="Glu{T}(ReadOnlySpan{T}, Span{T}, int, ActivationFunction, GluLayout, CpuContext?)"/>
    public static void SwiGlu<T>(ReadOnlySpan<T> x, Span<T> destination, int d, GluLayout layout = GluLayout.GateFirst,
                                 CpuContext? context = null) where T : unmanaged =>
        Glu(x, destination, d, ActivationFunction.Silu, layout, context);

    /// <summary>SwiGLU over separate gate and up: <c>silu(gate) * up</c>.</summary>
    /// <inheritdoc cref="Glu{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void SwiGlu<T>(ReadOnlySpan<T> gate, ReadOnlySpan<T> up, Span<T> destination, CpuContext? context = null)
        where T : unmanaged =>
        Glu(gate, up, destination, ActivationFunction.Silu, context);

    /// <summary>GeGLU over packed rows: <c>gelu(gate) * up</c>.</summary>
    /// <param name="x">The fused gate/up projection, <c>[tokens, 2 * d]</c>.</param>
    /// <param name="destination">The output, <c>[tokens, d]</c>; must not overlap <paramref name="x"/>.</param>
    /// <param name="d">Elements of the output row; positive.</param>
    /// <param name="approximation">torch's <c>approximate</c> for the GELU.</param>
    /// <param name="layout">Which half is the gate.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void GeGlu<T>(ReadOnlySpan<T> x, Span<T> destination, int d, GeluApproximation approximation = GeluApproximation.None,
                                GluLayout layout = GluLayout.GateFirst, CpuContext? context = null) where T : unmanaged =>
        Glu(x, destination, d, GeluFunction(approximation), layout, context);

    /// <summary>GeGLU over separate gate and up: <c>gelu(gate) * up</c>.</summary>
    /// <param name="gate">The gate projection.</param>
    /// <param name="up">The up projection, as long as <paramref name="gate"/>.</param>
    /// <param name="destination">The output, as long as <paramref name="gate"/>; may be <paramref name="gate"/> itself.</param>
    /// <param name="approximation">torch's <c>approximate</c> for the GELU.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static void GeGlu<T>(ReadOnlySpan<T> gate, ReadOnlySpan<T> up, Span<T> destination,
                                GeluApproximation approximation = GeluApproximation.None, CpuContext? context = null)
        where T : unmanaged =>
        Glu(gate, up, destination, GeluFunction(approximation), context);

    /// <summary>ReGLU over packed rows: <c>relu(gate) * up</c>.</summary>
    /// <inheritdoc cref="Glu{T}(ReadOnlySpan{T}, Span{T}, int, ActivationFunction, GluLayout, CpuContext?)"/>
    public static void ReGlu<T>(ReadOnlySpan<T> x, Span<T> destination, int d, GluLayout layout = GluLayout.GateFirst,
                                CpuContext? context = null) where T : unmanaged =>
        Glu(x, destination, d, ActivationFunction.Relu, layout, context);

    /// <summary>ReGLU over separate gate and up: <c>relu(gate) * up</c>.</summary>
    /// <inheritdoc cref="Glu{T}(ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, ActivationFunction, CpuContext?)"/>
    public static void ReGlu<T>(ReadOnlySpan<T> gate, ReadOnlySpan<T> up, Span<T> destination, CpuContext? context = null)
        where T : unmanaged =>
        Glu(gate, up, destination, ActivationFunction.Relu, context);

    private const long SplitRow = 16384;

    private static unsafe Status GluSplit<T>(nint handle, T* gate, T* up, T* output, long tokens, long d, ActivationFunction activation,
                                             Dtype dtype) where T : unmanaged
    {
        var p = new GluParams
        {
            X = gate, Up = up, Out = output, Tokens = tokens, D = d, Activation = (Activation)activation,
            Layout = Interop.GluLayout.GluSplit, Dtype = dtype,
        };
        return NativeMethods.Glu(handle, &p);
    }

    private static ActivationFunction GeluFunction(GeluApproximation approximation) => approximation switch
    {
        GeluApproximation.None => ActivationFunction.GeluErf,
        GeluApproximation.Tanh => ActivationFunction.GeluTanh,
        _ => throw new ArgumentOutOfRangeException(nameof(approximation), approximation, "Not a GeluApproximation value."),
    };

    private static void CheckActivation(ActivationFunction activation)
    {
        if ((uint)activation > (uint)ActivationFunction.Erf)
            throw new ArgumentOutOfRangeException(nameof(activation), activation, "Not an ActivationFunction value.");
    }
}
