using System.Runtime.CompilerServices;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// A view of device memory: <see cref="Length"/> elements of <typeparamref name="T"/> from an address, as <see cref="Span{T}"/> is of
/// host memory. A view of a <see cref="DeviceBuffer{T}"/> (<see cref="DeviceBuffer{T}.AsSpan()"/>, an implicit conversion, or
/// <see cref="Slice(long, long)"/>) keeps its allocation reachable, and using it after the buffer is disposed throws
/// <see cref="ObjectDisposedException"/>. A view of memory another library owns (TorchSharp, ONNX Runtime, cuBLAS) is made from its
/// pointer (<see cref="DeviceSpan{T}(nint, long)"/>); keeping that memory alive is its owner's business.
/// </summary>
/// <remarks>
/// The kernels' CUDA overloads take views for every tensor, with the same parameter names and checks as the span overloads, so a
/// call switches backend by switching its arguments' types. <c>default</c> is an empty view (an absent optional tensor).
/// </remarks>
/// <typeparam name="T">The element type: any unmanaged type (kernels take float, Half and BFloat16 tensors and int or long indices).</typeparam>
public readonly unsafe struct DeviceSpan<T> where T : unmanaged
{
    private readonly DeviceMemory? _memory;
    private readonly nint _address; // the address itself for foreign memory; the byte offset into _memory otherwise
    private readonly long _length;

    /// <summary>A view of <paramref name="length"/> elements at <paramref name="pointer"/>, device memory the caller keeps alive
    /// (another library's tensor, say); it must be aligned for <typeparamref name="T"/>, as CUDA requires.</summary>
    /// <param name="pointer">The device address (a <c>CUdeviceptr</c>, <c>data_ptr()</c>); 0 only with a length of 0.</param>
    /// <param name="length">Elements; non-negative.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative or its bytes overflow.</exception>
    /// <exception cref="ArgumentException"><paramref name="pointer"/> is 0 with a positive length.</exception>
    public DeviceSpan(nint pointer, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, long.MaxValue / sizeof(T));
        if (pointer == 0 && length != 0)
            throw new ArgumentException($"A null device pointer with {length} elements.", nameof(pointer));
        _address = pointer;
        _length = length;
    }

    internal DeviceSpan(DeviceMemory memory, nint offsetBytes, long length)
    {
        _memory = memory;
        _address = offsetBytes;
        _length = length;
    }

    /// <summary>Elements in the view.</summary>
    public long Length => _length;

    /// <summary>Whether <see cref="Length"/> is 0.</summary>
    public bool IsEmpty => _length == 0;

    /// <summary>Bytes in the view.</summary>
    public long SizeInBytes => _length * sizeof(T);

    /// <summary>The device of the <see cref="DeviceBuffer{T}"/> this views; null for memory made into a view from its pointer.</summary>
    public int? Device => _memory?.Device;

    /// <summary>The device address of the first element, to hand to another library. It is valid while the buffer is not disposed:
    /// a call through this view holds the buffer for its duration, a raw pointer cannot.</summary>
    /// <exception cref="ObjectDisposedException">The buffer this views is disposed.</exception>
    public nint DevicePointer
    {
        get
        {
            if (_memory is null)
                return _address;
            ThrowIfDisposed(_memory, "this view");
            return _memory.DangerousGetHandle() + _address;
        }
    }

    /// <summary>The view from element <paramref name="start"/> to the end.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="start"/> is outside [0, <see cref="Length"/>].</exception>
    public DeviceSpan<T> Slice(long start)
    {
        if ((ulong)start > (ulong)_length)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"Outside [0, {_length}], the view's length.");
        return At(start, _length - start);
    }

    /// <summary>The view of <paramref name="length"/> elements from element <paramref name="start"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the view.</exception>
    public DeviceSpan<T> Slice(long start, long length)
    {
        if ((ulong)start > (ulong)_length)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"Outside [0, {_length}], the view's length.");
        if ((ulong)length > (ulong)(_length - start))
            throw new ArgumentOutOfRangeException(nameof(length), length, $"More than the {_length - start} elements from {start}.");
        return At(start, length);
    }

    private DeviceSpan<T> At(long start, long length)
    {
        nint offset = _address + (nint)(start * sizeof(T));
        return _memory is null ? new DeviceSpan<T>(length == 0 && offset == 0 ? 0 : offset, length) : new DeviceSpan<T>(_memory, offset, length);
    }

    /// <summary>
    /// Copies <paramref name="source"/>, host memory of exactly <see cref="Length"/> elements, into the view. Without a stream the
    /// copy is done when the call returns (<c>cudaMemcpy</c>, after the work queued on CUDA's legacy default stream). With one it is
    /// ordered on it; ordinary (pageable) host memory is staged by CUDA before the call returns, so it may be reused at once.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="source"/>'s length differs from the view's.</exception>
    /// <exception cref="ObjectDisposedException">The buffer this views, or the stream, is disposed.</exception>
    /// <exception cref="CudaException">CUDA failed: the view is not device memory CUDA knows, for one.</exception>
    public void CopyFrom(ReadOnlySpan<T> source, CudaStream? stream = null)
    {
        CheckCopyLength(source.Length, nameof(source));
        using var call = new DeviceCall(stream, sameDevice: false);
        nint destination = call.Address(this, "the device span");
        if (_length == 0)
            return;
        fixed (T* from = source)
            NativeStatus.ThrowIfFailed(NativeMethods.CudaMemcpy((void*)destination, from, (nuint)SizeInBytes, CudaCopyKind.CudaHostToDevice,
                                                                call.Stream), "lk_cuda_memcpy");
    }

    /// <summary>
    /// Copies the view into <paramref name="destination"/>, host memory of exactly <see cref="Length"/> elements. Without a stream
    /// the copy is done when the call returns, after the work queued on CUDA's legacy default stream; with one it is ordered on it
    /// (into pageable host memory CUDA still returns only when it is done, but synchronise the stream before relying on that).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/>'s length differs from the view's.</exception>
    /// <exception cref="ObjectDisposedException">The buffer this views, or the stream, is disposed.</exception>
    /// <exception cref="CudaException">CUDA failed.</exception>
    public void CopyTo(Span<T> destination, CudaStream? stream = null)
    {
        CheckCopyLength(destination.Length, nameof(destination));
        using var call = new DeviceCall(stream, sameDevice: false);
        nint source = call.Address(this, "the device span");
        if (_length == 0)
            return;
        fixed (T* to = destination)
            NativeStatus.ThrowIfFailed(NativeMethods.CudaMemcpy(to, (void*)source, (nuint)SizeInBytes, CudaCopyKind.CudaDeviceToHost,
                                                                call.Stream), "lk_cuda_memcpy");
    }

    /// <summary>Copies <paramref name="source"/>, a device view of exactly <see cref="Length"/> elements, into this one: synchronous
    /// without a stream, ordered on it with one. The two may be on different devices.</summary>
    /// <exception cref="ArgumentException"><paramref name="source"/>'s length differs from the view's.</exception>
    /// <exception cref="ObjectDisposedException">A buffer either views, or the stream, is disposed.</exception>
    /// <exception cref="CudaException">CUDA failed.</exception>
    public void CopyFrom(DeviceSpan<T> source, CudaStream? stream = null)
    {
        CheckCopyLength(source.Length, nameof(source));
        using var call = new DeviceCall(stream, sameDevice: false);
        nint destination = call.Address(this, "the device span");
        nint from = call.Address(source, nameof(source));
        if (_length == 0)
            return;
        NativeStatus.ThrowIfFailed(NativeMethods.CudaMemcpy((void*)destination, (void*)from, (nuint)SizeInBytes, CudaCopyKind.CudaDeviceToDevice,
                                                            call.Stream), "lk_cuda_memcpy");
    }

    /// <summary>Sets every byte of the view to <paramref name="value"/>, ordered on <paramref name="stream"/> (CUDA's legacy default
    /// stream when null): like a kernel, it is queued, not done, when the call returns. <c>0xff</c> makes every int -1.</summary>
    /// <exception cref="ObjectDisposedException">The buffer this views, or the stream, is disposed.</exception>
    /// <exception cref="CudaException">CUDA failed.</exception>
    public void Memset(byte value, CudaStream? stream = null)
    {
        using var call = new DeviceCall(stream, sameDevice: false);
        nint pointer = call.Address(this, "the device span");
        if (_length == 0)
            return;
        NativeStatus.ThrowIfFailed(NativeMethods.CudaMemset((void*)pointer, value, (nuint)SizeInBytes, call.Stream), "lk_cuda_memset");
    }

    /// <summary>Sets the view to zeros, ordered on <paramref name="stream"/> as <see cref="Memset"/>.</summary>
    /// <inheritdoc cref="Memset"/>
    public void Clear(CudaStream? stream = null) => Memset(0, stream);

    /// <summary>The view's elements, copied to a new array when the call returns (as <see cref="CopyTo(Span{T}, CudaStream?)"/> without a stream).</summary>
    /// <exception cref="InvalidOperationException">The view is longer than an array holds.</exception>
    public T[] ToArray()
    {
        if (_length > Array.MaxLength)
            throw new InvalidOperationException($"{_length} elements are more than an array holds.");
        var values = new T[_length];
        CopyTo(values);
        return values;
    }

    /// <summary>The allocation this views (null for foreign memory) and the address or offset: for <see cref="DeviceCall"/>.</summary>
    internal DeviceMemory? Memory => _memory;

    internal nint AddressOrOffset => _address;

    private void CheckCopyLength(long length, string name)
    {
        if (length != _length)
            throw new ArgumentException($"Length {length} differs from the device span's ({_length}).", name);
    }

    internal static void ThrowIfDisposed(DeviceMemory memory, string what)
    {
        if (memory.IsClosed)
            ThrowDisposed(what);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowDisposed(string what) =>
        throw new ObjectDisposedException(what, $"{what} is a view of a DeviceBuffer<{typeof(T).Name}> that has been disposed.");

    /// <inheritdoc/>
    public override string ToString() => $"DeviceSpan<{typeof(T).Name}>[{_length}]";
}
