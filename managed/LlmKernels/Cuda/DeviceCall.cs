using System.Runtime.CompilerServices;

namespace LlmKernels;

/// <summary>
/// One CUDA call's hold on what it uses: a reference on the stream and on every buffer a view passed to it belongs to (so a
/// concurrent Dispose cannot free them under the call; a disposed one throws <see cref="ObjectDisposedException"/> naming the
/// parameter), and, for a kernel, the check that every buffer is on the stream's device. Allocates nothing.
/// </summary>
/// <remarks>
/// The device check covers what the managed layer knows: buffers it allocated and streams it created (or was told the device of).
/// Kernels run on the calling thread's current device, so a kernel call makes the first device it learns of (the stream's, else
/// its first buffer's) current before the native call; foreign pointers and streams of unknown device leave it as it is
/// (docs/cuda/managed.md).
/// </remarks>
internal ref struct DeviceCall
{
    private const int MaxHeld = 16;

    [InlineArray(MaxHeld)]
    private struct Held
    {
        private DeviceMemory? _first;
    }

    private Held _held;
    private int _count;
    private readonly CudaStream? _stream;
    private bool _streamAdded;
    private readonly bool _sameDevice;
    private int _device;
    private string? _deviceOwner;

    /// <summary>Starts a call on <paramref name="stream"/> (null: CUDA's legacy default stream), after checking CUDA is available.
    /// <paramref name="sameDevice"/>: every buffer must be on the stream's device, and on one device (kernels; not copies).</summary>
    internal DeviceCall(CudaStream? stream, bool sameDevice = true)
    {
        CudaDevice.ThrowIfUnavailable();
        _sameDevice = sameDevice;
        _device = -1;
        if (stream is null)
            return;
        if (stream.Device is int device)
        {
            if (sameDevice)
                CudaDevice.MakeCurrent(device); /* before the reference is taken: a throw here holds nothing */
            _device = device;
            _deviceOwner = "stream";
        }
        Stream = stream.AddRef(ref _streamAdded);
        _stream = stream;
    }

    /// <summary>The <c>cudaStream_t</c> to pass.</summary>
    internal nint Stream { get; }

    /// <summary>The device address of <paramref name="span"/> (0 when it is empty), held until <see cref="Dispose"/>.</summary>
    /// <exception cref="ObjectDisposedException">Its buffer is disposed; the message names <paramref name="name"/>.</exception>
    /// <exception cref="ArgumentException">Its buffer is on another device than the stream or an earlier argument.</exception>
    internal nint Address<T>(DeviceSpan<T> span, string name) where T : unmanaged
    {
        if (span.IsEmpty)
            return 0;
        DeviceMemory? memory = span.Memory;
        if (memory is null)
            return span.AddressOrOffset;
        DeviceSpan<T>.ThrowIfDisposed(memory, name);
        if (_count == MaxHeld)
            throw new InvalidOperationException($"A call holds at most {MaxHeld} buffers.");
        bool added = false;
        memory.DangerousAddRef(ref added);
        _held[_count++] = memory;
        if (_sameDevice)
            CheckDevice(memory.Device, name);
        return memory.DangerousGetHandle() + span.AddressOrOffset;
    }

    /// <summary><see cref="Address{T}"/> with the bytes it spans, for the overlap checks.</summary>
    internal DeviceRange Range<T>(DeviceSpan<T> span, string name) where T : unmanaged => new(Address(span, name), span.SizeInBytes);

    private void CheckDevice(int device, string name)
    {
        if (_device < 0)
        {
            _device = device;
            _deviceOwner = name;
            CudaDevice.MakeCurrent(device);
        }
        else if (device != _device)
        {
            throw new ArgumentException($"{name} is on device {device}, {_deviceOwner} on device {_device}: a kernel's tensors and " +
                                        "stream are on one device.", name);
        }
    }

    public void Dispose()
    {
        for (int i = 0; i < _count; i++)
        {
            _held[i]!.DangerousRelease();
            _held[i] = null;
        }
        _count = 0;
        if (_streamAdded)
        {
            _stream!.Release();
            _streamAdded = false;
        }
    }
}

/// <summary>A view's device address and size in bytes (0 and 0 for an empty view).</summary>
internal readonly record struct DeviceRange(nint Address, long Bytes)
{
    internal bool Overlaps(DeviceRange other) =>
        Bytes > 0 && other.Bytes > 0 && (ulong)Address < (ulong)other.Address + (ulong)other.Bytes &&
        (ulong)other.Address < (ulong)Address + (ulong)Bytes;
}
