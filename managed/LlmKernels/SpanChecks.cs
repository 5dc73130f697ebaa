using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace LlmKernels;

/// <summary>
/// Argument checks shared by the kernels, in TensorPrimitives' wording. The throws live in
/// separate non-inlined methods so the checks inline into the kernel wrappers as a few compares
/// (a one-token call is a few hundred nanoseconds; the wrapper should cost a few percent of that).
/// </summary>
internal static class SpanChecks
{
    /// <summary>Rows of <paramref name="x"/> when each row has <paramref name="rowLength"/> elements.</summary>
    internal static int Rows<T>(ReadOnlySpan<T> x, int rowLength, string xName, string rowLengthName)
    {
        if (rowLength == 0)
            ThrowEmptyRow(rowLengthName);
        int rows = x.Length / rowLength;
        if (rows * rowLength != x.Length)
            ThrowNotWholeRows(x.Length, rowLength, xName, rowLengthName);
        return rows;
    }

    internal static void SameLength<TA, TB>(ReadOnlySpan<TA> expected, ReadOnlySpan<TB> actual, string expectedName, string actualName)
    {
        if (actual.Length != expected.Length)
            ThrowLengthMismatch(actual.Length, expected.Length, expectedName, actualName);
    }

    /// <summary>In place (the same memory) is allowed; a partial overlap is not.</summary>
    internal static void NoPartialOverlap<T>(ReadOnlySpan<T> input, ReadOnlySpan<T> destination, string destinationName, string inputName)
    {
        if (input.Overlaps(destination, out int offset) && !(offset == 0 && input.Length == destination.Length))
            ThrowOverlap(destinationName, inputName, " without being the same memory");
    }

    /// <summary>No overlap at all, whatever the element types.</summary>
    internal static void NoOverlap<TA, TB>(ReadOnlySpan<TA> a, ReadOnlySpan<TB> b, string aName, string bName)
        where TA : unmanaged where TB : unmanaged
    {
        if (MemoryMarshal.AsBytes(a).Overlaps(MemoryMarshal.AsBytes(b)))
            ThrowOverlap(aName, bName, "");
    }

    internal static void FiniteNonNegative(float value, string name)
    {
        if (!(value >= 0f) || float.IsPositiveInfinity(value))
            ThrowNotFiniteNonNegative(value, name);
    }

    [DoesNotReturn]
    private static void ThrowEmptyRow(string name) => throw new ArgumentException("The row length must be positive.", name);

    [DoesNotReturn]
    private static void ThrowNotWholeRows(int length, int rowLength, string name, string rowLengthName) =>
        throw new ArgumentException($"Length {length} is not a whole number of rows of {rowLength} ({rowLengthName}.Length).", name);

    [DoesNotReturn]
    private static void ThrowLengthMismatch(int actual, int expected, string expectedName, string actualName) =>
        throw new ArgumentException($"Length {actual} differs from {expectedName}.Length ({expected}).", actualName);

    [DoesNotReturn]
    private static void ThrowOverlap(string name, string otherName, string detail) =>
        throw new ArgumentException($"{name} overlaps {otherName}{detail}.", name);

    [DoesNotReturn]
    private static void ThrowNotFiniteNonNegative(float value, string name) =>
        throw new ArgumentOutOfRangeException(name, value, "Must be finite and non-negative.");

    /// <summary>
    /// The elements between tokens of a <c>[tokens, stride]</c> view: <paramref name="stride"/>, or <paramref name="row"/>
    /// (a token's heads, <paramref name="rowDescription"/>) when it is 0; shorter than a row is an error.
    /// </summary>
    internal static long TokenStride(int stride, long row, string name, string rowDescription)
    {
        if (stride == 0)
            return row;
        if (stride < row)
            throw new ArgumentOutOfRangeException(name, stride, $"Less than {rowDescription} ({row}), the span of a token's heads; 0 means that span.");
        return stride;
    }

    /// <summary><paramref name="length"/> holds <paramref name="tokens"/> rows of <paramref name="row"/> elements <paramref name="stride"/> apart
    /// (<paramref name="unit"/> names the rows for the message). Lengths are longs so device views (<see cref="DeviceSpan{T}"/>)
    /// are checked by the same code as spans.</summary>
    internal static void TokenRows(long length, long tokens, long stride, long row, string name, string strideName, string unit = "tokens")
    {
        if (tokens == 0)
            return;
        long needed = (tokens - 1) * stride + row;
        if (length < needed)
            throw new ArgumentException($"Length {length} is less than the {needed} elements of {tokens} {unit} {stride} apart ({strideName}).", name);
    }

    /// <summary>
    /// The elements between rows of a <c>[rows, stride]</c> view whose rows hold <paramref name="row"/> elements
    /// (<paramref name="rowName"/>): <paramref name="stride"/>, or <paramref name="row"/> when it is 0; negative or less than a row is an error.
    /// </summary>
    internal static long RowStride(int stride, int row, string name, string rowName)
    {
        if (stride == 0)
            return row;
        if (stride < row)
            throw new ArgumentOutOfRangeException(name, stride, $"Less than {rowName} ({row}), a row's elements; 0 means {rowName}.");
        return stride;
    }
}
