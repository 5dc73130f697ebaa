namespace LlmKernels.Tests;

/// <summary>
/// The norms on a CUDA device (the emulator's here) against the CPU API's results on the same inputs: every overload over device
/// buffers, and the raw-pointer forms, for float, Half and BFloat16, with T and f32 weights. The GPU sums a row in another order, so
/// outputs agree to the native CUDA test's tolerance (an ulp of a 16-bit type; 4e-6 relative for f32), while a pre-norm residual,
/// rounded at the same point on both, agrees bit for bit. Then the shape, overlap and scalar checks, named as the CPU names them.
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class CudaNormTests
{
    private const int Rows = 5;

    public static TheoryData<int> Hiddens => new() { 1, 40, 257, 1024 };

    /// <summary>got within the tolerance of want, element by element, at each row's scale.</summary>
    private static void Close<T>(ReadOnlySpan<T> want, ReadOnlySpan<T> got, int hidden, string what) where T : unmanaged
    {
        Assert.Equal(want.Length, got.Length);
        for (int row = 0; row * hidden < want.Length; row++)
        {
            double rowMax = 0;
            for (int i = 0; i < hidden; i++)
                rowMax = Math.Max(rowMax, Math.Abs(Element.ToFloat(want[row * hidden + i])));
            for (int i = 0; i < hidden; i++)
            {
                float w = Element.ToFloat(want[row * hidden + i]), g = Element.ToFloat(got[row * hidden + i]);
                if (float.IsNaN(w))
                {
                    Assert.True(float.IsNaN(g), $"{what}[{row}, {i}]: {g}, not NaN");
                    continue;
                }
                double scale = Math.Max(Math.Abs(w), 1e-3);
                double tolerance = typeof(T) == typeof(float) ? 4e-6 * scale + 2e-6 * rowMax : Element.Ulp<T>(scale);
                Assert.True(Math.Abs(g - w) <= tolerance, $"{what}[{row}, {i}]: {g} against the CPU's {w} (tolerance {tolerance})");
            }
        }
    }

    private static T[] Random<T>(int seed, int length, float low = -2f, float high = 2f) where T : unmanaged =>
        Element.Random<T>(new Random(seed), length, low, high);

    [CudaTheory]
    [MemberData(nameof(Hiddens))]
    public void RmsNormMatchesTheCpu(int hidden)
    {
        Check<float>(hidden);
        Check<Half>(hidden);
        Check<BFloat16>(hidden);

        static void Check<T>(int hidden) where T : unmanaged
        {
            T[] x = Random<T>(1, Rows * hidden), weight = Random<T>(2, hidden, 0.5f, 1.5f);
            float[] weight32 = Random<float>(3, hidden, -1f, 1f);
            using DeviceBuffer<T> dx = new(x), dw = new(weight), dy = new(x.Length);
            using DeviceBuffer<float> dw32 = new(weight32);
            var want = new T[x.Length];

            Kernels.RmsNorm<T>(x, weight, want, 1e-5f);
            Kernels.RmsNorm<T>(dx, dw, dy, 1e-5f);
            Close<T>(want, dy.ToArray(), hidden, "y");

            Kernels.RmsNorm<T>(x, weight32, want, weightOffsetOne: true);
            Kernels.RmsNorm<T>(dx, dw32, dy, weightOffsetOne: true);
            Close<T>(want, dy.ToArray(), hidden, "y (f32 weight, 1 + w)");

            // In place, on a stream.
            using var stream = new CudaStream();
            Kernels.RmsNorm<T>(x, weight, want);
            Kernels.RmsNorm<T>(dx, dw, dx, stream: stream);
            var got = new T[x.Length];
            dx.CopyTo(got, stream);
            stream.Synchronize();
            Close<T>(want, got, hidden, "y (in place)");
        }
    }

    [CudaTheory]
    [MemberData(nameof(Hiddens))]
    public void FusedAddRmsNormMatchesTheCpuAndStoresTheSameResidual(int hidden)
    {
        Check<float>(hidden, f32Weight: false);
        Check<Half>(hidden, f32Weight: true);
        Check<BFloat16>(hidden, f32Weight: false);
        Check<BFloat16>(hidden, f32Weight: true);

        static void Check<T>(int hidden, bool f32Weight) where T : unmanaged
        {
            T[] x = Random<T>(4, Rows * hidden), residual = Random<T>(5, Rows * hidden), weight = Random<T>(6, hidden, 0.5f, 1.5f);
            float[] weight32 = Random<float>(7, hidden, 0.5f, 1.5f);
            using DeviceBuffer<T> dx = new(x), dr = new(residual), dw = new(weight), dy = new(x.Length);
            using DeviceBuffer<float> dw32 = new(weight32);
            T[] wantResidual = (T[])residual.Clone(), want = new T[x.Length];
            if (f32Weight)
            {
                Kernels.FusedAddRmsNorm<T>(x, wantResidual, weight32, want);
                Kernels.FusedAddRmsNorm<T>(dx, dr, dw32, dy);
            }
            else
            {
                Kernels.FusedAddRmsNorm<T>(x, wantResidual, weight, want);
                Kernels.FusedAddRmsNorm<T>(dx, dr, dw, dy);
            }
            Close<T>(want, dy.ToArray(), hidden, "y");
            Assert.Equal(wantResidual, dr.ToArray());
            Assert.Equal(x, dx.ToArray());

            // destination == residual (in place on the residual).
            dr.CopyFrom(residual);
            wantResidual = (T[])residual.Clone();
            Kernels.FusedAddRmsNorm<T>(x, wantResidual, weight, wantResidual);
            Kernels.FusedAddRmsNorm<T>(dx, dr, dw, dr);
            Close<T>(wantResidual, dr.ToArray(), hidden, "y == residual");
        }
    }

    [CudaTheory]
    [MemberData(nameof(Hiddens))]
    public void LayerNormsMatchTheCpu(int hidden)
    {
        Check<float>(hidden);
        Check<Half>(hidden);
        Check<BFloat16>(hidden);

        static void Check<T>(int hidden) where T : unmanaged
        {
            // A large mean, so the two-pass variance matters.
            T[] x = Random<T>(8, Rows * hidden, 3f, 5f), residual = Random<T>(9, Rows * hidden);
            T[] weight = Random<T>(10, hidden, 0.5f, 1.5f), bias = Random<T>(11, hidden);
            float[] weight32 = Random<float>(12, hidden, 0.5f, 1.5f), bias32 = Random<float>(13, hidden);
            using DeviceBuffer<T> dx = new(x), dr = new(residual), dw = new(weight), db = new(bias), dy = new(x.Length);
            using DeviceBuffer<float> dw32 = new(weight32), db32 = new(bias32);
            var want = new T[x.Length];

            Kernels.LayerNorm<T>(x, weight, bias, want);
            Kernels.LayerNorm<T>(dx, dw, db, dy);
            Close<T>(want, dy.ToArray(), hidden, "LayerNorm");

            Kernels.LayerNorm<T>(x, weight32, ReadOnlySpan<float>.Empty, want, 1e-3f, weightOffsetOne: true);
            Kernels.LayerNorm<T>(dx, dw32, default, dy, 1e-3f, weightOffsetOne: true);
            Close<T>(want, dy.ToArray(), hidden, "LayerNorm (f32 weight, no bias, 1 + w)");

            Kernels.LayerNorm<T>(x, hidden, want);
            Kernels.LayerNorm<T>(dx, hidden, dy);
            Close<T>(want, dy.ToArray(), hidden, "LayerNorm (no weight, no bias)");

            Kernels.PostLayerNorm<T>(x, residual, weight32, bias32, want, alpha: 1.75f);
            Kernels.PostLayerNorm<T>(dx, dr, dw32, db32, dy, alpha: 1.75f);
            Close<T>(want, dy.ToArray(), hidden, "PostLayerNorm");
            Assert.Equal(residual, dr.ToArray());

            Kernels.PostRmsNorm<T>(x, residual, weight, want, alpha: 2f);
            Kernels.PostRmsNorm<T>(dx, dr, dw, dy, alpha: 2f);
            Close<T>(want, dy.ToArray(), hidden, "PostRmsNorm");
            Kernels.PostRmsNorm<T>(x, residual, weight32, want);
            Kernels.PostRmsNorm<T>(dx, dr, dw32, dy);
            Close<T>(want, dy.ToArray(), hidden, "PostRmsNorm (f32 weight)");

            T[] wantResidual = (T[])residual.Clone();
            Kernels.FusedAddLayerNorm<T>(x, wantResidual, weight, bias, want);
            Kernels.FusedAddLayerNorm<T>(dx, dr, dw, db, dy);
            Close<T>(want, dy.ToArray(), hidden, "FusedAddLayerNorm");
            Assert.Equal(wantResidual, dr.ToArray());
            dr.CopyFrom(residual);
            wantResidual = (T[])residual.Clone();
            Kernels.FusedAddLayerNorm<T>(x, wantResidual, weight32, bias32, want);
            Kernels.FusedAddLayerNorm<T>(dx, dr, dw32, db32, dy);
            Close<T>(want, dy.ToArray(), hidden, "FusedAddLayerNorm (f32 weight)");
            Assert.Equal(wantResidual, dr.ToArray());
        }
    }

    [CudaFact]
    public void RawPointerFormsMatchTheCpu()
    {
        Check<float>(TensorDataType.Float32);
        Check<Half>(TensorDataType.Float16);
        Check<BFloat16>(TensorDataType.BFloat16);

        static void Check<T>(TensorDataType type) where T : unmanaged
        {
            const int hidden = 96, pad = 8, stride = hidden + pad;
            T[] x = Random<T>(14, Rows * hidden), residual = Random<T>(15, Rows * hidden), weight = Random<T>(16, hidden, 0.5f, 1.5f);
            float[] weight32 = Random<float>(17, hidden), bias32 = Random<float>(18, hidden);
            using var stream = new CudaStream();
            // Rows padded to a stride, as views into a wider tensor.
            using DeviceBuffer<T> dx = new(Padded(x)), dr = new(Padded(residual)), dw = new(weight), dy = new(Rows * stride);
            using DeviceBuffer<float> dw32 = new(weight32), db32 = new(bias32);
            nint s = stream.Handle;
            var want = new T[x.Length];

            Kernels.RmsNorm<T>(x, weight, want, 1e-5f);
            CudaKernels.RmsNorm(dx.DevicePointer, dw.DevicePointer, dy.DevicePointer, Rows, hidden, type, type, 1e-5f,
                                xStride: stride, destinationStride: stride, stream: s);
            stream.Synchronize();
            Close<T>(want, Unpadded(dy.ToArray()), hidden, "raw RmsNorm");

            T[] wantResidual = (T[])residual.Clone();
            Kernels.FusedAddRmsNorm<T>(x, wantResidual, weight32, want);
            CudaKernels.FusedAddRmsNorm(dx.DevicePointer, dr.DevicePointer, dw32.DevicePointer, dy.DevicePointer, Rows, hidden, type,
                                        TensorDataType.Float32, xStride: stride, residualStride: stride, destinationStride: stride, stream: s);
            stream.Synchronize();
            Close<T>(want, Unpadded(dy.ToArray()), hidden, "raw FusedAddRmsNorm");
            Assert.Equal(wantResidual, Unpadded(dr.ToArray()));

            dr.CopyFrom(Padded(residual));
            Kernels.PostLayerNorm<T>(x, residual, weight32, bias32, want, alpha: 0.5f);
            CudaKernels.Norm(NormType.LayerNorm, ResidualPlacement.PostNorm, dx.DevicePointer, dr.DevicePointer, dw32.DevicePointer,
                             db32.DevicePointer, dy.DevicePointer, Rows, hidden, type, TensorDataType.Float32, 1e-5f, alpha: 0.5f,
                             xStride: stride, residualStride: stride, destinationStride: stride, stream: s);
            stream.Synchronize();
            Close<T>(want, Unpadded(dy.ToArray()), hidden, "raw PostLayerNorm");

            // The legacy default stream (0), and views over foreign pointers through the typed overloads.
            var fx = new DeviceSpan<T>(dx.DevicePointer, dx.Length);
            Kernels.RmsNorm<T>(x, weight, want);
            CudaKernels.RmsNorm(fx.DevicePointer, dw.DevicePointer, dy.DevicePointer, Rows, hidden, type, type, xStride: stride,
                                destinationStride: stride);
            Close<T>(want, Unpadded(dy.ToArray()), hidden, "raw RmsNorm (default stream)");

            static T[] Padded(T[] rows)
            {
                var padded = new T[Rows * stride];
                for (int r = 0; r < Rows; r++)
                    rows.AsSpan(r * hidden, hidden).CopyTo(padded.AsSpan(r * stride));
                return padded;
            }

            static T[] Unpadded(T[] padded)
            {
                var rows = new T[Rows * hidden];
                for (int r = 0; r < Rows; r++)
                    padded.AsSpan(r * stride, hidden).CopyTo(rows.AsSpan(r * hidden));
                return rows;
            }
        }
    }

    [CudaFact]
    public void AKernelCallAllocatesNothing()
    {
        using DeviceBuffer<BFloat16> x = new(Random<BFloat16>(19, 4 * 64)), residual = new(4 * 64), y = new(4 * 64);
        using DeviceBuffer<float> weight = new(Random<float>(20, 64));
        using var stream = new CudaStream();
        residual.Clear(stream);
        void Calls()
        {
            Kernels.RmsNorm<BFloat16>(x, weight, y, stream: stream);
            Kernels.FusedAddRmsNorm<BFloat16>(x, residual, weight, y, stream: stream);
            Kernels.PostLayerNorm<BFloat16>(x, residual, weight, default, y, alpha: 2f, stream: stream);
            CudaKernels.RmsNorm(x.DevicePointer, weight.DevicePointer, y.DevicePointer, 4, 64, TensorDataType.BFloat16,
                                TensorDataType.Float32, stream: stream.Handle);
        }
        Calls();
        stream.Synchronize();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
            Calls();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        stream.Synchronize();
        Assert.Equal(0, allocated);
    }

    [CudaFact]
    public void NoRowsDoNothing()
    {
        using DeviceBuffer<float> empty = new(0), weight = new(new float[] { 1, 2 });
        Kernels.RmsNorm<float>(empty, weight, empty);
        Kernels.FusedAddRmsNorm<float>(empty, empty, weight, empty);
        Kernels.LayerNorm<float>(empty, 2, empty);
        CudaKernels.RmsNorm(0, 0, 0, 0, 2, TensorDataType.Float32, TensorDataType.Float32);
    }

    private static void Named(string paramName, Action call)
    {
        var e = Assert.ThrowsAny<ArgumentException>(call);
        Assert.Equal(paramName, e.ParamName);
    }

    [CudaFact]
    public void BadShapesAreNamedAsOnTheCpu()
    {
        using DeviceBuffer<Half> x = new(40), y = new(40), residual = new(40), w = new(8), b = new(8), shortY = new(32), w7 = new(7);
        using DeviceBuffer<float> w32 = new(8), b6 = new(6);
        Named("x", () => Kernels.RmsNorm<Half>(x, w7, y));
        Named("weight", () => Kernels.RmsNorm<Half>(x, default(DeviceSpan<Half>), y));
        Named("destination", () => Kernels.RmsNorm<Half>(x, w, shortY));
        Named("residual", () => Kernels.FusedAddRmsNorm<Half>(x, shortY, w, y));
        Named("bias", () => Kernels.LayerNorm<Half>(x, w32, b6, y));
        Named("hidden", () => Kernels.LayerNorm<Half>(x, 0, y));
        Named("x", () => Kernels.LayerNorm<Half>(x, 7, y));
        Named("epsilon", () => Kernels.RmsNorm<Half>(x, w, y, epsilon: -1f));
        Named("epsilon", () => Kernels.LayerNorm<Half>(x, w, b, y, epsilon: float.NaN));
        Named("alpha", () => Kernels.PostRmsNorm<Half>(x, residual, w, y, alpha: float.PositiveInfinity));
        Named("residual", () => Kernels.PostLayerNorm<Half>(x, shortY, w, b, y));
        Named("weight", () => Kernels.LayerNorm<Half>(x, default(DeviceSpan<Half>), b, y)); // an empty weight sets no hidden, as on the CPU
        Assert.Throws<NotSupportedException>(() =>
        {
            using DeviceBuffer<int> ints = new(8);
            Kernels.RmsNorm<int>(ints, ints, ints);
        });
    }

    [CudaFact]
    public void OverlapsAreNamedAsOnTheCpu()
    {
        using DeviceBuffer<float> all = new(200), w = new(8);
        DeviceSpan<float> x = all.AsSpan(0, 40), shifted = all.AsSpan(8, 40), residual = all.AsSpan(100, 40);
        Named("destination", () => Kernels.RmsNorm<float>(x, w, shifted));
        Named("destination", () => Kernels.RmsNorm<float>(x, all.AsSpan(60, 8), all.AsSpan(60, 40).Slice(0, 40)));
        Named("residual", () => Kernels.FusedAddRmsNorm<float>(x, shifted, w, all.AsSpan(100, 40)));
        Named("destination", () => Kernels.FusedAddRmsNorm<float>(x, residual, w, all.AsSpan(104, 40)));
        Named("destination", () => Kernels.PostRmsNorm<float>(x, residual, w, residual));
        // In place is allowed, as on the CPU.
        Kernels.RmsNorm<float>(x, w, x);
        Kernels.FusedAddRmsNorm<float>(x, residual, w, residual);
        Kernels.FusedAddRmsNorm<float>(x, residual, w, x);
        CudaDevice.Synchronize(0);
    }
}
