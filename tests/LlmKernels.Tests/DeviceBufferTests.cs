namespace LlmKernels.Tests;

/// <summary>
/// DeviceBuffer and its views: round trips of every element type the kernels take, sizes, views and their bounds, copies on the
/// device and on a stream, Clear and Memset, length mismatches named, and the lifetime rules (dispose twice, use after dispose,
/// a view after its buffer's dispose, a buffer outliving its stream).
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class DeviceBufferTests
{
    private static T[] Values<T>(int length, Func<int, T> value) => Enumerable.Range(0, length).Select(value).ToArray();

    [CudaFact]
    public void RoundTripsEveryElementType()
    {
        RoundTrip(Values(1000, i => i * 0.25f - 7f));
        RoundTrip(Values(1000, i => (Half)(i * 0.5f - 3f)));
        RoundTrip(Values(1000, i => (BFloat16)(i * 0.125f + 1f)));
        RoundTrip(Values(1000, i => i * 7919 - 100));
        RoundTrip(Values(1000, i => (long)i << 33));
        RoundTrip(Values(3, i => (byte)i));

        static void RoundTrip<T>(T[] values) where T : unmanaged
        {
            using var buffer = new DeviceBuffer<T>(values);
            Assert.Equal(values.Length, buffer.Length);
            Assert.Equal(values, buffer.ToArray());
            var back = new T[values.Length];
            buffer.CopyTo(back);
            Assert.Equal(values, back);
        }
    }

    [CudaFact]
    public void SizesAndDevice()
    {
        using var buffer = new DeviceBuffer<Half>(1001);
        Assert.Equal(1001, buffer.Length);
        Assert.Equal(2002, buffer.SizeInBytes);
        Assert.Equal(0, buffer.Device);
        Assert.NotEqual(0, buffer.DevicePointer);
        Assert.Equal(0, buffer.DevicePointer % 256); // cudaMalloc's alignment
        Assert.False(buffer.IsDisposed);
        DeviceSpan<Half> all = buffer;
        Assert.Equal(1001, all.Length);
        Assert.Equal(2002, all.SizeInBytes);
        Assert.Equal(0, all.Device);
        Assert.Equal(buffer.DevicePointer, all.DevicePointer);
    }

    [CudaFact]
    public void AnEmptyBufferAllocatesNothingAndCopiesNothing()
    {
        using var buffer = new DeviceBuffer<float>(0);
        Assert.Equal(0, buffer.Length);
        Assert.Equal(0, buffer.DevicePointer);
        Assert.True(buffer.AsSpan().IsEmpty);
        buffer.CopyFrom([]);
        buffer.CopyTo([]);
        buffer.Clear();
        Assert.Empty(buffer.ToArray());
        using var fromEmpty = new DeviceBuffer<int>(ReadOnlySpan<int>.Empty);
        Assert.Equal(0, fromEmpty.Length);
    }

    [CudaFact]
    public void BadSizesAndDevicesAreNamed()
    {
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => new DeviceBuffer<float>(-1)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => new DeviceBuffer<float>(long.MaxValue / 2)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => new DeviceBuffer<float>(4, device: -1)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => new DeviceBuffer<float>(4, CudaDevice.Count)).ParamName);
    }

    [CudaFact]
    public void MoreThanTheDeviceHasIsOutOfMemory()
    {
        // 2^50 bytes: more than any device (and more than the emulator's address space), so cudaMalloc fails.
        var e = Assert.Throws<InsufficientMemoryException>(() => new DeviceBuffer<float>(1L << 48));
        Assert.Contains("cudaErrorMemoryAllocation", e.Message);
    }

    [CudaFact]
    public void ViewsReadAndWriteTheirRangeOnly()
    {
        using var buffer = new DeviceBuffer<int>(Values(100, i => i));
        DeviceSpan<int> middle = buffer.AsSpan(10, 20);
        Assert.Equal(20, middle.Length);
        Assert.Equal(buffer.DevicePointer + 10 * sizeof(int), middle.DevicePointer);
        Assert.Equal(Values(20, i => i + 10), middle.ToArray());
        middle.CopyFrom(Values(20, i => -i));
        int[] all = buffer.ToArray();
        Assert.Equal(Values(10, i => i), all[..10]);
        Assert.Equal(Values(20, i => -i), all[10..30]);
        Assert.Equal(Values(70, i => i + 30), all[30..]);
        // Views of views, and the tail form.
        Assert.Equal([-5, -6], middle.Slice(5, 2).ToArray());
        Assert.Equal(Values(5, i => i + 95), buffer.AsSpan(95).ToArray());
        Assert.Equal(Values(3, i => -17 - i), middle.Slice(17).ToArray());
        Assert.True(buffer.AsSpan(100).IsEmpty);
        middle.Slice(3, 4).Clear();
        Assert.Equal([-2, 0, 0, 0, 0, -7], buffer.AsSpan(12, 6).ToArray());
    }

    [CudaFact]
    public void ViewsOutOfRangeAreNamed()
    {
        using var buffer = new DeviceBuffer<float>(10);
        Assert.Equal("start", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.AsSpan(11)).ParamName);
        Assert.Equal("start", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.AsSpan(-1, 2)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.AsSpan(4, 7)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.AsSpan(0, -1)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => buffer.AsSpan(2, 6).Slice(1, 6)).ParamName);
    }

    [CudaFact]
    public void CopyLengthMismatchesAreNamed()
    {
        using var buffer = new DeviceBuffer<float>(8);
        using var other = new DeviceBuffer<float>(9);
        var e = Assert.Throws<ArgumentException>(() => buffer.CopyFrom(new float[7]));
        Assert.Equal("source", e.ParamName);
        Assert.Contains("Length 7 differs from the device span's (8)", e.Message);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => buffer.CopyTo(new float[9])).ParamName);
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => buffer.CopyFrom(other)).ParamName);
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => buffer.AsSpan(1).CopyFrom(new float[8])).ParamName);
    }

    [CudaFact]
    public void DeviceToDeviceCopies()
    {
        using var a = new DeviceBuffer<BFloat16>(Values(64, i => (BFloat16)(i - 32)));
        using var b = new DeviceBuffer<BFloat16>(64);
        b.Clear();
        b.AsSpan(32).CopyFrom(a.AsSpan(0, 32));
        Assert.Equal(Values(32, i => (BFloat16)0f).Concat(Values(32, i => (BFloat16)(i - 32))), b.ToArray());
        b.CopyFrom(a);
        Assert.Equal(a.ToArray(), b.ToArray());
    }

    [CudaFact]
    public void StreamOrderedCopiesAndMemsets()
    {
        using var stream = new CudaStream();
        using var buffer = new DeviceBuffer<int>(256);
        buffer.Memset(0xff, stream);
        var minusOnes = new int[256];
        buffer.CopyTo(minusOnes, stream);
        stream.Synchronize();
        Assert.All(minusOnes, v => Assert.Equal(-1, v));
        buffer.CopyFrom(Values(256, i => i * 3), stream);
        buffer.AsSpan(0, 128).Clear(stream);
        var back = new int[256];
        buffer.CopyTo(back, stream);
        stream.Synchronize();
        Assert.Equal(Values(128, _ => 0).Concat(Values(128, i => (i + 128) * 3)), back);
    }

    [CudaFact]
    public void DisposingTwiceIsSafeAndUseAfterDisposeThrows()
    {
        var buffer = new DeviceBuffer<float>(16);
        DeviceSpan<float> view = buffer.AsSpan(4, 4);
        buffer.Dispose();
        buffer.Dispose();
        Assert.True(buffer.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => buffer.DevicePointer);
        Assert.Throws<ObjectDisposedException>(() => buffer.CopyFrom(new float[16]));
        Assert.Throws<ObjectDisposedException>(() => buffer.CopyTo(new float[16]));
        Assert.Throws<ObjectDisposedException>(() => buffer.Clear());
        Assert.Throws<ObjectDisposedException>(() => buffer.ToArray());
        // A view taken before keeps the allocation reachable, but not usable: it is the buffer's.
        Assert.Throws<ObjectDisposedException>(() => view.DevicePointer);
        var e = Assert.Throws<ObjectDisposedException>(() => view.CopyTo(new float[4]));
        Assert.Contains("disposed", e.Message);
        using var live = new DeviceBuffer<float>(16);
        Assert.Throws<ObjectDisposedException>(() => live.CopyFrom(buffer));
    }

    [CudaFact]
    public void AKernelGivenADisposedBufferNamesIt()
    {
        using var x = new DeviceBuffer<float>(Values(64, i => i * 0.5f));
        var weight = new DeviceBuffer<float>(Values(16, _ => 1f));
        using var y = new DeviceBuffer<float>(64);
        weight.Dispose();
        var e = Assert.Throws<ObjectDisposedException>(() => Kernels.RmsNorm<float>(x, weight, y));
        Assert.Equal("weight", e.ObjectName);
    }

    [CudaFact]
    public void ABufferOutlivesTheStreamItWasUsedOn()
    {
        var values = Values(512, i => i * 1.5f);
        using var buffer = new DeviceBuffer<float>(512);
        using (var stream = new CudaStream())
        {
            buffer.CopyFrom(values, stream);
            stream.Synchronize();
        }
        Assert.Equal(values, buffer.ToArray());
        using var second = new CudaStream();
        buffer.Clear(second);
        second.Synchronize();
        Assert.All(buffer.ToArray(), v => Assert.Equal(0f, v));
    }

    [CudaFact]
    public void AViewKeepsTheAllocationReachable()
    {
        DeviceSpan<long> view = MakeView();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.Equal(Values(8, i => (long)i * i), view.ToArray());

        static DeviceSpan<long> MakeView() => new DeviceBuffer<long>(Values(8, i => (long)i * i)).AsSpan();
    }

    [CudaFact]
    public void ForeignPointersMakeViews()
    {
        using var owner = new DeviceBuffer<float>(Values(32, i => (float)i));
        var foreign = new DeviceSpan<float>(owner.DevicePointer + 8 * sizeof(float), 8);
        Assert.Null(foreign.Device);
        Assert.Equal(Values(8, i => i + 8f), foreign.ToArray());
        foreign.Slice(2, 2).CopyFrom([-1f, -2f]);
        Assert.Equal([9f, -1f, -2f, 12f], owner.AsSpan(9, 4).ToArray());
        Assert.True(new DeviceSpan<float>(0, 0).IsEmpty);
        Assert.Equal("pointer", Assert.Throws<ArgumentException>(() => new DeviceSpan<float>(0, 4)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => new DeviceSpan<float>(owner.DevicePointer, -4)).ParamName);
        Assert.True(default(DeviceSpan<float>).IsEmpty);
        Assert.True(((DeviceSpan<float>)(DeviceBuffer<float>?)null).IsEmpty);
    }
}
