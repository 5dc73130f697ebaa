using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// A CUDA stream (a <c>cudaStream_t</c>): kernels and copies given one are queued on it in order and run asynchronously to the host;
/// <see cref="Synchronize"/> waits for them and reports the bad indices kernels found. A stream made here
/// (<see cref="CudaStream(int)"/>) is owned and non-blocking (not ordered with CUDA's legacy default stream); one another library
/// made (TorchSharp, ONNX Runtime's compute stream) is wrapped, not owned, by <see cref="FromHandle"/>. A null stream argument, and
/// <see cref="Default"/>, mean CUDA's legacy default stream of the calling thread's current device.
/// </summary>
/// <remarks>
/// Disposing twice is safe; after it <see cref="Handle"/>, <see cref="Synchronize"/> and calls given the stream throw
/// <see cref="ObjectDisposedException"/>. Disposing an owned stream with work queued returns at once; CUDA releases the stream
/// when that work is done. Buffers do not depend on a stream: they outlive it.
/// </remarks>
public sealed class CudaStream : IDisposable
{
    private readonly StreamHandle _handle;
    private readonly bool _isDefault;

    /// <summary>Creates a non-blocking stream on <paramref name="device"/>, which becomes the calling thread's current device.</summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not a device.</exception>
    public unsafe CudaStream(int device = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        CudaDevice.CheckDevice(device);
        _handle = new StreamHandle(ownsHandle: true);
        nint stream;
        NativeStatus.ThrowIfFailed(NativeMethods.CudaStreamCreate(device, &stream), "lk_cuda_stream_create");
        _handle.Set(stream);
        Device = device;
    }

    private CudaStream(nint handle, int? device, bool isDefault)
    {
        _handle = new StreamHandle(ownsHandle: false);
        _handle.Set(handle);
        Device = device;
        _isDefault = isDefault;
    }

    /// <summary>CUDA's legacy default stream (handle 0) of the calling thread's current device: what a null stream argument means.
    /// Shared, so <see cref="Dispose"/> does nothing to it.</summary>
    public static CudaStream Default { get; } = new(0, null, isDefault: true);

    /// <summary>
    /// Wraps a <c>cudaStream_t</c> another library owns (0 is the legacy default stream), without taking it over: disposing the
    /// wrapper leaves the stream alone, and the owner must keep it alive while the wrapper is used.
    /// </summary>
    /// <param name="handle">The <c>cudaStream_t</c>.</param>
    /// <param name="device">Its device, when known: kernels given the stream then check their buffers are on it.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is given and not a device.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="device"/> is given and CUDA is not available here.</exception>
    public static CudaStream FromHandle(nint handle, int? device = null)
    {
        if (device is int d)
        {
            CudaDevice.ThrowIfUnavailable();
            CudaDevice.CheckDevice(d, nameof(device));
        }
        return new CudaStream(handle, device, isDefault: false);
    }

    /// <summary>The <c>cudaStream_t</c>, to hand to another library while the stream is alive.</summary>
    /// <exception cref="ObjectDisposedException">The stream is disposed.</exception>
    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle.DangerousGetHandle();
        }
    }

    /// <summary>The device the stream is on; null for a wrapped stream whose device was not given, and for <see cref="Default"/>.</summary>
    public int? Device { get; }

    /// <summary>Whether disposing destroys the stream (one this class created).</summary>
    public bool OwnsHandle => !_handle.IsWrapped;

    /// <summary>
    /// Waits until everything queued on the stream is done, then reports the first bad index a kernel found in device memory since
    /// the last report (a slot, block id, position, sequence offset or expert id out of range: the kernel skipped the work it would
    /// have directed, and other outputs may have been written).
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ObjectDisposedException">The stream is disposed.</exception>
    /// <exception cref="ArgumentException">A kernel found a bad index: <see cref="ArgumentException.ParamName"/> is the kernel's C#
    /// parameter (<c>slotMapping</c>, <c>blockTables</c>, ...), the message names the element, its value and the entry point.</exception>
    /// <exception cref="CudaException">CUDA reported an error, a fault in a kernel queued before, for one.</exception>
    public void Synchronize()
    {
        using var call = new DeviceCall(this, sameDevice: false);
        NativeStatus.ThrowIfFailed(NativeMethods.CudaStreamSynchronize(call.Stream), "lk_cuda_stream_synchronize");
    }

    /// <summary>Destroys an owned stream; does nothing to a wrapped one or to <see cref="Default"/> but mark the wrapper disposed
    /// (<see cref="Default"/> is never disposed). Safe to call twice.</summary>
    public void Dispose()
    {
        if (!_isDefault)
            _handle.Dispose();
    }

    /// <summary>A reference on the handle for one call; returns the <c>cudaStream_t</c>.</summary>
    internal nint AddRef(ref bool added)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        _handle.DangerousAddRef(ref added);
        return _handle.DangerousGetHandle();
    }

    internal void Release() => _handle.DangerousRelease();

    /// <inheritdoc/>
    public override string ToString() =>
        _isDefault ? "CudaStream.Default" : $"CudaStream 0x{_handle.DangerousGetHandle():x}" + (Device is int d ? $" on device {d}" : "") +
                                            (OwnsHandle ? "" : " (wrapped)");

    private sealed class StreamHandle(bool ownsHandle) : SafeHandle(0, ownsHandle)
    {
        internal bool IsWrapped { get; } = !ownsHandle;

        // A wrapped 0 is the legacy default stream, a valid handle: validity is not what decides whether to destroy.
        public override bool IsInvalid => handle == 0;

        internal void Set(nint value) => SetHandle(value);

        protected override bool ReleaseHandle() => NativeMethods.CudaStreamDestroy(handle) == Status.Ok;
    }
}
