namespace LlmKernels;

/// <summary>Argument checks shared by the kernels, in TensorPrimitives' wording.</summary>
internal static class SpanChecks
{
    /// <summary>Rows of <paramref name="x"/> when each row has <paramref name="rowLength"/> elements.</summary>
    internal static int Rows<T>(ReadOnlySpan<T> x, int rowLength, string xName, string rowLengthName)
    {
        if (rowLength == 0)
            throw new ArgumentException("The row length must be positive.", rowLengthName);
        if (x.Length % rowLength != 0)
            throw new ArgumentException($"Length {x.Length} is not a whole number of rows of {rowLength} ({rowLengthName}.Length).", xName);
        return x.Length / rowLength;
    }

    internal static void SameLength<TA, TB>(ReadOnlySpan<TA> expected, ReadOnlySpan<TB> actual, string expectedName, string actualName)
    {
        if (actual.Length != expected.Length)
            throw new ArgumentException($"Length {actual.Length} differs from {expectedName}.Length ({expected.Length}).", actualName);
    }

    /// <summary>In place (the same memory) is allowed; a partial overlap is not.</summary>
    internal static void NoPartialOverlap<T>(ReadOnlySpan<T> input, ReadOnlySpan<T> destination, string destinationName, string inputName)
    {
        if (input.Overlaps(destination, out int offset) && !(offset == 0 && input.Length == destination.Length))
            throw new ArgumentException($"{destinationName} overlaps {inputName} without being the same memory.", destinationName);
    }

    /// <summary>No overlap at all, whatever the element types.</summary>
    internal static void NoOverlap<TA, TB>(ReadOnlySpan<TA> a, ReadOnlySpan<TB> b, string aName, string bName)
        where TA : unmanaged where TB : unmanaged
    {
        var aBytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(a);
        var bBytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(b);
        if (aBytes.Overlaps(bBytes))
            throw new ArgumentException($"{aName} overlaps {bName}.", aName);
    }
}
