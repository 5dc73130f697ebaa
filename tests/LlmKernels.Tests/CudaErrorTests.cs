namespace LlmKernels.Tests;

/// <summary>
/// The error funnel on the CUDA side: a CUDA runtime failure is a CudaException carrying the entry point, the CUDA call, the
/// error's name and text; an argument the native library refuses is an ArgumentException naming the C# parameter.
/// </summary>
[Collection(CudaCollection.Name)]
public sealed unsafe class CudaErrorTests
{
    [CudaFact]
    public void HostMemoryPassedAsDeviceMemoryIsACudaErrorWithItsName()
    {
        // The emulator checks copy directions as CUDA does on a GPU: a pointer cudaMalloc did not return is not device memory.
        var host = new float[16];
        fixed (float* pointer = host)
        {
            var notDevice = new DeviceSpan<float>((nint)pointer, host.Length);
            var e = Assert.Throws<CudaException>(() => notDevice.CopyFrom(new float[16]));
            Assert.Equal("cudaErrorInvalidValue", e.ErrorName);
            Assert.StartsWith("lk_cuda_memcpy: cudaMemcpy: cudaErrorInvalidValue: invalid argument", e.Message);
            Assert.Equal(6, e.NativeStatus); // LK_ERR_DEVICE
            Assert.IsAssignableFrom<LlmKernelsException>(e);
        }
        // The error is not sticky: the next call works.
        using var buffer = new DeviceBuffer<float>(new float[] { 1, 2, 3 });
        Assert.Equal([1f, 2f, 3f], buffer.ToArray());
    }

    [CudaFact]
    public void ANativeArgumentErrorNamesTheParameter()
    {
        using var x = new DeviceBuffer<float>(new float[32]);
        using var weight = new DeviceBuffer<float>(new float[8]);
        // Raw pointers: the native check names the C field, mapped to the C# parameter.
        var e = Assert.Throws<ArgumentException>(() => CudaKernels.RmsNorm(x.DevicePointer, weight.DevicePointer, 0, 4, 8,
                                                                            TensorDataType.Float32, TensorDataType.Float32));
        Assert.Equal("destination", e.ParamName);
        Assert.StartsWith("lk_cuda_rms_norm: y: ", e.Message);
        Assert.Equal("xStride", Assert.Throws<ArgumentException>(() => CudaKernels.RmsNorm(x.DevicePointer, weight.DevicePointer, x.DevicePointer, 4, 8,
            TensorDataType.Float32, TensorDataType.Float32, xStride: 3)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentException>(() => CudaKernels.RmsNorm(x.DevicePointer, weight.DevicePointer, x.DevicePointer, -1, 8,
            TensorDataType.Float32, TensorDataType.Float32)).ParamName);
        Assert.Equal("weightType", Assert.Throws<ArgumentException>(() => CudaKernels.RmsNorm(x.DevicePointer, weight.DevicePointer, x.DevicePointer, 4, 8,
            TensorDataType.Float16, TensorDataType.BFloat16)).ParamName);
        Assert.Equal("dataType", Assert.Throws<ArgumentOutOfRangeException>(() => CudaKernels.RmsNorm(x.DevicePointer, weight.DevicePointer, x.DevicePointer, 4, 8,
            TensorDataType.Int32, TensorDataType.Float32)).ParamName);
    }

    [CudaFact]
    public void CudaErrorNamesAreReadFromTheMessage()
    {
        Assert.Equal("cudaErrorIllegalAddress",
                     new CudaException("x", "cudaStreamSynchronize: cudaErrorIllegalAddress: an illegal memory access was encountered").ErrorName);
        Assert.Equal("cudaErrorMemoryAllocation",
                     new CudaException("x", "cudaHostAlloc (the kernels' error records): cudaErrorMemoryAllocation: out of memory").ErrorName);
        Assert.Equal("", new CudaException("x", "something without a name").ErrorName);
    }
}
