using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace LlmKernels;

/// <summary>
/// What the shaped overloads need from a <see cref="ReadOnlyTensorSpan{T}"/>: its dimensions as ints, which dimensions are
/// dense, and the memory it addresses as a span for the span overloads to check and pin. Every throw is an
/// <see cref="ArgumentException"/> naming the tensor.
/// </summary>
/// <remarks>
/// A dimension of length 1 has no meaningful stride (System.Numerics.Tensors stores 0 there), so only dimensions longer than 1
/// are held to a stride.
/// </remarks>
internal static class TensorChecks
{
    /// <summary>The lengths of <paramref name="x"/>, which must have rank <paramref name="rank"/> (<paramref name="shape"/> names its
    /// dimensions for the message) and dimensions that fit an int.</summary>
    internal static void Lengths<T>(in ReadOnlyTensorSpan<T> x, int rank, string shape, Span<int> lengths, string name)
    {
        if (x.Rank != rank)
            throw new ArgumentException($"Rank {x.Rank}, not {rank}: the shape is {shape}.", name);
        for (int i = 0; i < rank; i++)
        {
            nint length = x.Lengths[i];
            if (length > int.MaxValue)
                throw new ArgumentException($"Dimension {i} is {length} long, more than {int.MaxValue}.", name);
            lengths[i] = (int)length;
        }
    }

    /// <summary>Dimensions from <paramref name="first"/> on are row-major dense: the last has stride 1, each other the product of
    /// the lengths after it.</summary>
    internal static void DenseFrom<T>(in ReadOnlyTensorSpan<T> x, int first, string name)
    {
        nint expected = 1;
        for (int i = x.Rank - 1; i >= first; i--)
        {
            if (x.Lengths[i] > 1 && x.Strides[i] != expected)
                throw new ArgumentException($"Dimension {i} has stride {x.Strides[i]}, not {expected}: dimensions {first} to {x.Rank - 1} " +
                                            "must be dense (row-major, no gaps).", name);
            expected *= x.Lengths[i];
        }
    }

    /// <summary>The stride of dimension 0 as the span overloads' token stride: 0 (the row's own length) when there is at most one
    /// token, otherwise at least <paramref name="row"/>, the elements of the dense dimensions after it.</summary>
    internal static int TokenStride<T>(in ReadOnlyTensorSpan<T> x, long row, string name)
    {
        if (x.Lengths[0] <= 1)
            return 0;
        nint stride = x.Strides[0];
        if (stride < row)
            throw new ArgumentException($"Dimension 0 has stride {stride}, less than the {row} elements of a token: tokens would overlap.", name);
        if (stride > int.MaxValue)
            throw new ArgumentException($"Dimension 0 has stride {stride}, more than {int.MaxValue}.", name);
        return (int)stride;
    }

    /// <summary>The elements from the first <paramref name="x"/> addresses to its last: what the span overloads check lengths
    /// and overlaps against. 0 when <paramref name="x"/> is empty.</summary>
    internal static int Extent<T>(in ReadOnlyTensorSpan<T> x, string name)
    {
        if (x.FlattenedLength == 0)
            return 0;
        // Strides are non-negative (System.Numerics.Tensors refuses negative ones), so the last element is the farthest.
        long last = 0;
        for (int i = 0; i < x.Rank; i++)
            last += (long)(x.Lengths[i] - 1) * x.Strides[i];
        if (last >= int.MaxValue)
            throw new ArgumentException($"Addresses {last + 1} elements, more than a span holds.", name);
        return (int)last + 1;
    }

    /// <summary>The memory <paramref name="x"/> addresses, as a span of <paramref name="extent"/> (<see cref="Extent{T}"/>) elements:
    /// within what the tensor's constructor checked it may address.</summary>
    internal static ReadOnlySpan<T> Memory<T>(in ReadOnlyTensorSpan<T> x, int extent) =>
        extent == 0 ? default : MemoryMarshal.CreateReadOnlySpan(in TensorMarshal.GetReference(x), extent);

    /// <inheritdoc cref="Memory{T}(in ReadOnlyTensorSpan{T}, int)"/>
    internal static Span<T> Memory<T>(in TensorSpan<T> x, int extent) =>
        extent == 0 ? default : MemoryMarshal.CreateSpan(ref TensorMarshal.GetReference(x), extent);
}
