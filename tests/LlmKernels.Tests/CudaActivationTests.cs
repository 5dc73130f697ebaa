using static LlmKernels.Tests.CudaCompare;

namespace LlmKernels.Tests;

/// <summary>
/// Activations and GLUs on a CUDA device. The argument checks run now; the results (against the float64 reference, to the bound
/// the CPU kernels meet) run once the loaded CUDA library has lk_cuda_apply_activation and lk_cuda_glu (the activation branch).
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class CudaActivationTests
{
    public static TheoryData<ActivationFunction> Functions()
    {
        var data = new TheoryData<ActivationFunction>();
        foreach (ActivationFunction f in ActivationReference.All)
            data.Add(f);
        return data;
    }

    [CudaKernelTheory("lk_cuda_apply_activation")]
    [MemberData(nameof(Functions))]
    public void ActivationsMeetTheReference(ActivationFunction f)
    {
        Check<float>(f);
        Check<Half>(f);
        Check<BFloat16>(f);

        static void Check<T>(ActivationFunction f) where T : unmanaged
        {
            T[] x = ActivationReference.Inputs<T>(new Random(21), 3001);
            using DeviceBuffer<T> dx = new(x), dy = new(x.Length);
            using var stream = new CudaStream();
            Kernels.Activation<T>(dx, dy, f, stream);
            var y = new T[x.Length];
            dy.CopyTo(y, stream);
            stream.Synchronize();
            for (int i = 0; i < x.Length; i++)
            {
                double act = ActivationReference.Apply(f, Element.ToFloat(x[i]));
                Assert.True(ActivationReference.Agrees<T>(f, Element.ToFloat(y[i]), act, 1.0),
                            $"{f}({Element.ToFloat(x[i])}) = {Element.ToFloat(y[i])} on the device, {act} in float64");
            }
            // In place, through the named forms, equals the general one.
            Kernels.Silu<T>(dx, dx);
            Kernels.Activation<T>(new DeviceBuffer<T>(x), dy, ActivationFunction.Silu);
            Assert.Equal(dy.ToArray(), dx.ToArray());
        }
    }

    [CudaKernelFact("lk_cuda_glu")]
    public void GlusMeetTheReference()
    {
        Check<float>();
        Check<Half>();
        Check<BFloat16>();

        static void Check<T>() where T : unmanaged
        {
            const int tokens = 7, d = 300;
            T[] packed = ActivationReference.Inputs<T>(new Random(22), tokens * 2 * d, specials: false);
            using DeviceBuffer<T> dx = new(packed), dy = new(tokens * d);
            foreach (GluLayout layout in new[] { GluLayout.GateFirst, GluLayout.UpFirst })
            foreach (ActivationFunction f in new[] { ActivationFunction.Silu, ActivationFunction.GeluErf, ActivationFunction.GeluTanh, ActivationFunction.Relu })
            {
                Kernels.Glu<T>(dx, dy, d, f, layout);
                T[] y = dy.ToArray();
                for (int t = 0; t < tokens; t++)
                for (int i = 0; i < d; i++)
                {
                    int gateAt = t * 2 * d + (layout == GluLayout.GateFirst ? 0 : d) + i, upAt = t * 2 * d + (layout == GluLayout.GateFirst ? d : 0) + i;
                    double act = ActivationReference.Apply(f, Element.ToFloat(packed[gateAt])), up = Element.ToFloat(packed[upAt]);
                    Assert.True(ActivationReference.Agrees<T>(f, Element.ToFloat(y[t * d + i]), act, up), $"{f} {layout} [{t}, {i}]");
                }
            }
            // Split gate and up, longer than the row the split form cuts a span into.
            T[] gate = ActivationReference.Inputs<T>(new Random(23), 40000, specials: false), up2 = Element.Random<T>(new Random(24), 40000, -2f, 2f);
            using DeviceBuffer<T> dg = new(gate), du = new(up2), dz = new(gate.Length);
            Kernels.SwiGlu<T>(dg, du, dz);
            T[] z = dz.ToArray();
            for (int i = 0; i < gate.Length; i++)
            {
                double act = ActivationReference.Apply(ActivationFunction.Silu, Element.ToFloat(gate[i]));
                Assert.True(ActivationReference.Agrees<T>(ActivationFunction.Silu, Element.ToFloat(z[i]), act, Element.ToFloat(up2[i])), $"split [{i}]");
            }
            // The raw form, on the packed rows, is the typed one bit for bit.
            Kernels.GeGlu<T>(dx, dy, d, GeluApproximation.Tanh, GluLayout.UpFirst);
            T[] typed = dy.ToArray();
            dy.Clear();
            CudaKernels.Glu(dx.DevicePointer, dy.DevicePointer, tokens, d, ActivationFunction.GeluTanh, TensorDataTypes.Of<T>(), GluLayout.UpFirst);
            Assert.Equal(typed, dy.ToArray());
        }
    }

    [CudaFact]
    public void BadArgumentsAreNamedAsOnTheCpu()
    {
        using DeviceBuffer<float> x = new(60), y = new(30), shortY = new(29), all = new(200);
        Named("destination", () => Kernels.Activation<float>(x, y, ActivationFunction.Exp));
        Named("activation", () => Kernels.Activation<float>(x, x, (ActivationFunction)99));
        Named("approximation", () => Kernels.Gelu<float>(x, x, (GeluApproximation)5));
        Named("destination", () => Kernels.Activation<float>(all.AsSpan(0, 50), all.AsSpan(10, 50), ActivationFunction.Silu));
        Named("d", () => Kernels.SwiGlu<float>(x, y, 0));
        Named("x", () => Kernels.SwiGlu<float>(x, y, 7));
        Named("destination", () => Kernels.SwiGlu<float>(x, shortY, 15));
        Named("layout", () => Kernels.SwiGlu<float>(x, y, 15, (GluLayout)7));
        Named("destination", () => Kernels.SwiGlu<float>(all.AsSpan(0, 60), all.AsSpan(50, 30), 15));
        Named("up", () => Kernels.SwiGlu<float>(y, shortY, y));
        Named("destination", () => Kernels.SwiGlu<float>(y, x.AsSpan(0, 30), shortY));
        Named("up", () => Kernels.ReGlu<float>(all.AsSpan(0, 30), all.AsSpan(20, 30), y));
        Named("destination", () => Kernels.GeGlu<float>(all.AsSpan(0, 30), y, all.AsSpan(10, 30)));
        Named("dataType", () => CudaKernels.Activation(x.DevicePointer, x.DevicePointer, 60, ActivationFunction.Silu, TensorDataType.Int64));
        Named("gateStride", () => CudaKernels.GluSplit(x.DevicePointer, y.DevicePointer, y.DevicePointer, 2, 15, ActivationFunction.Silu,
                                                        TensorDataType.Float32, gateStride: 3));
        Named("gate", () => CudaKernels.GluSplit(0, y.DevicePointer, y.DevicePointer, 2, 15, ActivationFunction.Silu, TensorDataType.Float32));
    }
}
