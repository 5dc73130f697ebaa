namespace LlmKernels;

/// <summary>
/// Device memory for <see cref="Length"/> elements of <typeparamref name="T"/> on one CUDA device, owned: allocated by the
/// constructor (<c>lk_cuda_malloc</c>), freed by <see cref="Dispose"/> (or, failing that, by the garbage collector). Its views,
/// <see cref="DeviceSpan{T}"/> (<see cref="AsSpan()"/>, or the implicit conversion), are what the kernels' CUDA overloads take.
/// </summary>
/// <remarks>
/// <para>Disposing twice is safe; after it, <see cref="DevicePointer"/> and every use of the buffer or of a view of it throw
/// <see cref="ObjectDisposedException"/>. A call in progress on another thread holds the memory until it returns, and CUDA's own
/// free waits for the work queued before it that may use the memory, so disposing never frees memory a queued kernel reads.</para>
/// <para>A buffer needs no parent object: the CUDA runtime's context of a device lives as long as the process, so the device is an
/// ordinal (<see cref="Device"/>). Streams and events are not parents either; a buffer outlives the streams it was used on.</para>
/// <para>Fresh memory is not zeroed (as on a GPU): <see cref="Clear"/> it, or copy into it.</para>
/// </remarks>
/// <typeparam name="T">Any unmanaged type: the kernels take float, Half and BFloat16 tensors and int or long index arrays.</typeparam>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly DeviceMemory _memory;

    /// <summary>Allocates <paramref name="length"/> elements on <paramref name="device"/> (nothing for 0); the contents are undefined.</summary>
    /// <param name="length">Elements; non-negative.</param>
    /// <param name="device">The device: 0 to <see cref="CudaDevice.Count"/> - 1. It becomes the calling thread's current device, as
    /// <c>cudaMalloc</c> after <c>cudaSetDevice</c> does.</param>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative or too large, or <paramref name="device"/> is not a device.</exception>
    /// <exception cref="InsufficientMemoryException">The device has not that much memory free.</exception>
    public DeviceBuffer(long length, int device = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, long.MaxValue / sizeof(T));
        CudaDevice.CheckDevice(device);
        _memory = DeviceMemory.Allocate(device, length * sizeof(T));
        Length = length;
    }

    /// <summary>Allocates <c>source.Length</c> elements on <paramref name="device"/> and copies <paramref name="source"/> into them
    /// (done when the constructor returns).</summary>
    /// <inheritdoc cref="DeviceBuffer{T}(long, int)"/>
    public DeviceBuffer(ReadOnlySpan<T> source, int device = 0) : this(source.Length, device)
    {
        try
        {
            AsSpan().CopyFrom(source);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Elements in the buffer.</summary>
    public long Length { get; }

    /// <summary>Bytes in the buffer.</summary>
    public long SizeInBytes => Length * sizeof(T);

    /// <summary>The device the memory is on.</summary>
    public int Device => _memory.Device;

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => _memory.IsClosed;

    /// <summary>The device address of element 0 (0 for an empty buffer), to hand to another library while the buffer is alive.</summary>
    /// <exception cref="ObjectDisposedException">The buffer is disposed.</exception>
    public nint DevicePointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_memory.IsClosed, this);
            return _memory.DangerousGetHandle();
        }
    }

    /// <summary>A view of the whole buffer.</summary>
    public DeviceSpan<T> AsSpan() => new(_memory, 0, Length);

    /// <summary>A view from element <paramref name="start"/> to the end.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="start"/> is outside [0, <see cref="Length"/>].</exception>
    public DeviceSpan<T> AsSpan(long start) => AsSpan().Slice(start);

    /// <summary>A view of <paramref name="length"/> elements from element <paramref name="start"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the buffer.</exception>
    public DeviceSpan<T> AsSpan(long start, long length) => AsSpan().Slice(start, length);

    /// <summary>A view of the whole buffer; an empty view for null.</summary>
    public static implicit operator DeviceSpan<T>(DeviceBuffer<T>? buffer) => buffer is null ? default : buffer.AsSpan();

    /// <inheritdoc cref="DeviceSpan{T}.CopyFrom(ReadOnlySpan{T}, CudaStream?)"/>
    public void CopyFrom(ReadOnlySpan<T> source, CudaStream? stream = null) => AsSpan().CopyFrom(source, stream);

    /// <inheritdoc cref="DeviceSpan{T}.CopyTo(Span{T}, CudaStream?)"/>
    public void CopyTo(Span<T> destination, CudaStream? stream = null) => AsSpan().CopyTo(destination, stream);

    /// <inheritdoc cref="DeviceSpan{T}.CopyFrom(DeviceSpan{T}, CudaStream?)"/>
    public void CopyFrom(DeviceSpan<T> source, CudaStream? stream = null) => AsSpan().CopyFrom(source, stream);

    /// <inheritdoc cref="DeviceSpan{T}.Memset"/>
    public void Memset(byte value, CudaStream? stream = null) => AsSpan().Memset(value, stream);

    /// <inheritdoc cref="DeviceSpan{T}.Clear"/>
    public void Clear(CudaStream? stream = null) => AsSpan().Clear(stream);

    /// <inheritdoc cref="DeviceSpan{T}.ToArray"/>
    public T[] ToArray() => AsSpan().ToArray();

    /// <summary>Frees the memory once no call holds it; safe to call twice.</summary>
    public void Dispose() => _memory.Dispose();

    /// <inheritdoc/>
    public override string ToString() => $"DeviceBuffer<{typeof(T).Name}>[{Length}] on device {Device}" + (IsDisposed ? " (disposed)" : "");
}
