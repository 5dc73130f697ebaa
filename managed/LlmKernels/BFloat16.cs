using System.Globalization;
using System.Runtime.CompilerServices;

namespace LlmKernels;

/// <summary>
/// bfloat16: the upper 16 bits of an IEEE binary32 (8 exponent bits, 7 mantissa bits), the
/// activation type of most LLM checkpoints. Conversion from <see cref="float"/> rounds to nearest
/// even; conversion to <see cref="float"/> is exact. NaN stays NaN and infinities stay infinite.
/// </summary>
/// <remarks>Equality follows IEEE (NaN is unequal to itself, +0 equals -0), like <see cref="Half"/>;
/// <see cref="Equals(BFloat16)"/> treats all NaNs as equal, as <see cref="float.Equals(float)"/> does.</remarks>
public readonly struct BFloat16 : IEquatable<BFloat16>, IComparable<BFloat16>, ISpanFormattable
{
    private readonly ushort _bits;

    private BFloat16(ushort bits) => _bits = bits;

    /// <summary>Reinterprets raw bits.</summary>
    public static BFloat16 FromBits(ushort bits) => new(bits);

    /// <summary>The raw bits.</summary>
    public ushort Bits => _bits;

    /// <summary>Smallest difference from 1 to the next larger value: 2^-7.</summary>
    public static BFloat16 Epsilon => new(0x3c00);
    /// <summary>Largest finite value, about 3.39e38.</summary>
    public static BFloat16 MaxValue => new(0x7f7f);
    /// <summary>Most negative finite value.</summary>
    public static BFloat16 MinValue => new(0xff7f);
    /// <summary>Positive infinity.</summary>
    public static BFloat16 PositiveInfinity => new(0x7f80);
    /// <summary>Negative infinity.</summary>
    public static BFloat16 NegativeInfinity => new(0xff80);
    /// <summary>A quiet NaN.</summary>
    public static BFloat16 NaN => new(0x7fc0);
    /// <summary>Positive zero.</summary>
    public static BFloat16 Zero => new(0);
    /// <summary>One.</summary>
    public static BFloat16 One => new(0x3f80);

    /// <summary>Whether the value is NaN.</summary>
    public static bool IsNaN(BFloat16 value) => (value._bits & 0x7fff) > 0x7f80;
    /// <summary>Whether the value is positive or negative infinity.</summary>
    public static bool IsInfinity(BFloat16 value) => (value._bits & 0x7fff) == 0x7f80;
    /// <summary>Whether the value is neither infinite nor NaN.</summary>
    public static bool IsFinite(BFloat16 value) => (value._bits & 0x7f80) != 0x7f80;

    /// <summary>Rounds to nearest even. NaN keeps its sign and gets the quiet bit, so it cannot round into infinity.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static explicit operator BFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7fff_ffff) > 0x7f80_0000)
            return new((ushort)((bits >> 16) | 0x40));
        bits += 0x7fff + ((bits >> 16) & 1);
        return new((ushort)(bits >> 16));
    }

    /// <summary>Exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static explicit operator float(BFloat16 value) => BitConverter.UInt32BitsToSingle((uint)value._bits << 16);

    /// <summary>Rounds to nearest even, once (not through a rounded <see cref="float"/>).</summary>
    public static explicit operator BFloat16(double value) => (BFloat16)NarrowRoundToOdd(value);

    // double -> float rounding to odd, then float -> bf16 rounding to nearest even, gives the same
    // result as one rounding of the double: the sticky lsb keeps a value just off a bf16 tie off it.
    private static float NarrowRoundToOdd(double value)
    {
        float f = (float)value;
        if ((!float.IsFinite(f) && !double.IsFinite(value)) || (double)f == value)
            return f;
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (Math.Abs((double)f) > Math.Abs(value))
            bits--; // truncate toward zero (also brings an overflow to infinity back to MaxValue)
        return BitConverter.UInt32BitsToSingle(bits | 1);
    }
    /// <summary>Exact.</summary>
    public static explicit operator double(BFloat16 value) => (float)value;
    /// <summary>Converts through <see cref="float"/>; exact for every finite Half of bf16's precision.</summary>
    public static explicit operator BFloat16(Half value) => (BFloat16)(float)value;
    /// <summary>Rounds to nearest even.</summary>
    public static explicit operator Half(BFloat16 value) => (Half)(float)value;

    /// <summary>IEEE equality: NaN is unequal to everything, +0 equals -0.</summary>
    public static bool operator ==(BFloat16 left, BFloat16 right) => (float)left == (float)right;
    /// <summary>IEEE inequality.</summary>
    public static bool operator !=(BFloat16 left, BFloat16 right) => (float)left != (float)right;
    /// <summary>IEEE ordering.</summary>
    public static bool operator <(BFloat16 left, BFloat16 right) => (float)left < (float)right;
    /// <summary>IEEE ordering.</summary>
    public static bool operator >(BFloat16 left, BFloat16 right) => (float)left > (float)right;
    /// <summary>IEEE ordering.</summary>
    public static bool operator <=(BFloat16 left, BFloat16 right) => (float)left <= (float)right;
    /// <summary>IEEE ordering.</summary>
    public static bool operator >=(BFloat16 left, BFloat16 right) => (float)left >= (float)right;

    /// <summary>Equality as <see cref="float.Equals(float)"/>: NaN equals NaN.</summary>
    public bool Equals(BFloat16 other) => ((float)this).Equals((float)other);
    /// <summary>Equality as <see cref="float.Equals(object)"/>.</summary>
    public override bool Equals(object? obj) => obj is BFloat16 other && Equals(other);
    /// <summary>Consistent with <see cref="Equals(BFloat16)"/>.</summary>
    public override int GetHashCode() => ((float)this).GetHashCode();
    /// <summary>Total order as <see cref="float.CompareTo(float)"/>: NaN sorts first.</summary>
    public int CompareTo(BFloat16 other) => ((float)this).CompareTo((float)other);

    /// <summary>The shortest decimal text that reads back as this value (as <see cref="Half"/> formats).</summary>
    public override string ToString() => ToString(null, CultureInfo.CurrentCulture);
    /// <summary>Shortest round-trip text without a format; otherwise the value formatted as a <see cref="float"/>.</summary>
    public string ToString(string? format, IFormatProvider? formatProvider) =>
        string.IsNullOrEmpty(format) ? Shortest(formatProvider) : ((float)this).ToString(format, formatProvider);
    /// <summary>Formats as <see cref="ToString(string?, IFormatProvider?)"/> does.</summary>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        if (format.IsEmpty)
        {
            string text = Shortest(provider);
            charsWritten = text.TryCopyTo(destination) ? text.Length : 0;
            return charsWritten == text.Length;
        }
        return ((float)this).TryFormat(destination, out charsWritten, format, provider);
    }

    // The fewest significant digits that read back as this value, as Half and float format.
    private string Shortest(IFormatProvider? provider)
    {
        float value = (float)this;
        if (!float.IsFinite(value))
            return value.ToString(provider);
        for (int digits = 1; digits < 9; digits++)
        {
            string text = value.ToString("G" + digits.ToString(CultureInfo.InvariantCulture), provider);
            if (float.TryParse(text, NumberStyles.Float, provider, out float parsed) && ((BFloat16)parsed)._bits == _bits)
                return text;
        }
        return value.ToString(provider);
    }
}
