using System.Diagnostics.CodeAnalysis;

namespace LlmKernels;

/// <summary>
/// <see cref="SpanChecks"/> for device views: the same checks and wording over 64-bit lengths and device address ranges, so the CUDA
/// overloads refuse what the span overloads refuse, naming the same parameters.
/// </summary>
internal static class DeviceChecks
{
    /// <summary>Rows of a view of <paramref name="length"/> elements when each row has <paramref name="rowLength"/>.</summary>
    internal static long Rows(long length, long rowLength, string xName, string rowLengthName)
    {
        if (rowLength == 0)
            throw new ArgumentException("The row length must be positive.", rowLengthName);
        long rows = length / rowLength;
        if (rows * rowLength != length)
            throw new ArgumentException($"Length {length} is not a whole number of rows of {rowLength} ({rowLengthName}.Length).", xName);
        return rows;
    }

    internal static void SameLength(long expected, long actual, string expectedName, string actualName)
    {
        if (actual != expected)
            ThrowLengthMismatch(actual, expected, expectedName, actualName);
    }

    /// <summary>In place (the same memory) is allowed; a partial overlap is not.</summary>
    internal static void NoPartialOverlap(DeviceRange input, DeviceRange destination, string destinationName, string inputName)
    {
        if (input.Overlaps(destination) && !(input.Address == destination.Address && input.Bytes == destination.Bytes))
            ThrowOverlap(destinationName, inputName, " without being the same memory");
    }

    /// <summary>No overlap at all.</summary>
    internal static void NoOverlap(DeviceRange a, DeviceRange b, string aName, string bName)
    {
        if (a.Overlaps(b))
            ThrowOverlap(aName, bName, "");
    }

    /// <summary>The view of the <paramref name="tokens"/> rows a call touches: the overlap checks compare those only.</summary>
    internal static DeviceSpan<T> Rows<T>(DeviceSpan<T> x, long tokens, long stride, long row) where T : unmanaged =>
        tokens == 0 ? default : x.Slice(0, (tokens - 1) * stride + row);

    /// <summary>An int the span overloads take as an int (a length the native library takes as 64 bits is fine: this is for the
    /// C# parameters that are ints on both).</summary>
    internal static int Int32Length(long length, string name)
    {
        if (length > int.MaxValue)
            throw new ArgumentException($"Length {length} exceeds {int.MaxValue}.", name);
        return (int)length;
    }

    [DoesNotReturn]
    private static void ThrowLengthMismatch(long actual, long expected, string expectedName, string actualName) =>
        throw new ArgumentException($"Length {actual} differs from {expectedName}.Length ({expected}).", actualName);

    [DoesNotReturn]
    private static void ThrowOverlap(string name, string otherName, string detail) =>
        throw new ArgumentException($"{name} overlaps {otherName}{detail}.", name);
}
