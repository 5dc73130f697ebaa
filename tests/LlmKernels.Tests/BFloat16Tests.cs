using System.Globalization;

namespace LlmKernels.Tests;

/// <summary>
/// BFloat16 against bit patterns: float -> bf16 rounds to nearest even on the upper half (ties,
/// overflow to infinity, NaN kept NaN with its sign, subnormals), bf16 -> float is exact for all
/// 65536 patterns; IEEE equality, ordering and formatting.
/// </summary>
public sealed class BFloat16Tests
{
    [Theory]
    [InlineData(0x3F80_0000u, (ushort)0x3F80)] // 1.0
    [InlineData(0xBF80_0000u, (ushort)0xBF80)] // -1.0
    [InlineData(0x3F80_8000u, (ushort)0x3F80)] // tie, even below: stays
    [InlineData(0x3F81_8000u, (ushort)0x3F82)] // tie, odd below: rounds up to even
    [InlineData(0x3F80_8001u, (ushort)0x3F81)] // just above the tie
    [InlineData(0x3F80_7FFFu, (ushort)0x3F80)] // just below the tie
    [InlineData(0xBF81_8000u, (ushort)0xBF82)] // negative tie, odd below
    [InlineData(0x3FFF_FFFFu, (ushort)0x4000)] // carry into the exponent
    [InlineData(0x7F7F_7FFFu, (ushort)0x7F7F)] // rounds down to the largest finite bf16
    [InlineData(0x7F7F_8000u, (ushort)0x7F80)] // tie above the largest finite: to even, which is infinity
    [InlineData(0x7F7F_FFFFu, (ushort)0x7F80)] // float.MaxValue overflows
    [InlineData(0xFF7F_FFFFu, (ushort)0xFF80)] // float.MinValue overflows to -infinity
    [InlineData(0x7F80_0000u, (ushort)0x7F80)] // +infinity
    [InlineData(0xFF80_0000u, (ushort)0xFF80)] // -infinity
    [InlineData(0x0000_0000u, (ushort)0x0000)] // +0
    [InlineData(0x8000_0000u, (ushort)0x8000)] // -0 keeps its sign
    [InlineData(0x0000_0001u, (ushort)0x0000)] // the smallest float subnormal rounds to +0
    [InlineData(0x8000_0001u, (ushort)0x8000)] // ... and to -0 when negative
    [InlineData(0x0000_8000u, (ushort)0x0000)] // subnormal tie, even below
    [InlineData(0x0001_8000u, (ushort)0x0002)] // subnormal tie, odd below
    [InlineData(0x0001_0000u, (ushort)0x0001)] // the smallest bf16 subnormal, exact
    [InlineData(0x0000_8001u, (ushort)0x0001)] // rounds up to the smallest bf16 subnormal
    [InlineData(0x007F_FFFFu, (ushort)0x0080)] // the largest float subnormal rounds up to the smallest normal
    [InlineData(0x807F_0000u, (ushort)0x807F)] // a negative bf16 subnormal, exact
    public void FromFloatRoundsToNearestEven(uint floatBits, ushort expected) =>
        Assert.Equal(expected, ((BFloat16)BitConverter.UInt32BitsToSingle(floatBits)).Bits);

    [Fact]
    public void NearMaxFloatOverflowsToInfinity()
    {
        Assert.Equal((ushort)0x7F80, ((BFloat16)3.4e38f).Bits);
        Assert.Equal((ushort)0xFF80, ((BFloat16)(-3.4e38f)).Bits);
        Assert.True(BFloat16.IsInfinity((BFloat16)float.MaxValue));
        Assert.Equal((ushort)0x7F7F, ((BFloat16)3.39e38f).Bits); // below the halfway point: the largest finite
        Assert.Equal(BFloat16.MaxValue.Bits, ((BFloat16)(float)BFloat16.MaxValue).Bits);
    }

    [Theory]
    [InlineData(0x7FC0_0000u)] // quiet NaN
    [InlineData(0xFFC0_0000u)] // float.NaN on x64 (negative)
    [InlineData(0x7F80_0001u)] // signalling NaN whose payload is all in the low half: truncation would give infinity
    [InlineData(0xFF80_0001u)]
    [InlineData(0x7FFF_FFFFu)] // all-ones payload: rounding would carry out of the exponent
    [InlineData(0xFFFF_FFFFu)]
    [InlineData(0x7F80_8000u)]
    public void NaNStaysNaNWithItsSign(uint floatBits)
    {
        BFloat16 b = (BFloat16)BitConverter.UInt32BitsToSingle(floatBits);
        Assert.True(BFloat16.IsNaN(b), $"0x{floatBits:X8} -> 0x{b.Bits:X4} is not NaN");
        Assert.Equal(floatBits >> 31, (uint)b.Bits >> 15);
        Assert.True(float.IsNaN((float)b));
    }

    [Fact]
    public void ToFloatIsExactForEveryPattern()
    {
        for (int bits = 0; bits <= ushort.MaxValue; bits++)
        {
            BFloat16 b = BFloat16.FromBits((ushort)bits);
            float f = (float)b;
            float expected = BitConverter.UInt32BitsToSingle((uint)bits << 16);
            if (float.IsNaN(expected))
            {
                if (!float.IsNaN(f) || !BFloat16.IsNaN(b))
                    Assert.Fail($"0x{bits:X4} is NaN: got {f:R}, IsNaN {BFloat16.IsNaN(b)}");
                continue;
            }
            if (BitConverter.SingleToUInt32Bits(f) != BitConverter.SingleToUInt32Bits(expected))
                Assert.Fail($"0x{bits:X4} -> {f:R}, expected {expected:R}");
            // Every non-NaN value survives the round trip bit for bit.
            if (((BFloat16)f).Bits != bits)
                Assert.Fail($"0x{bits:X4} -> {f:R} -> 0x{((BFloat16)f).Bits:X4}");
            if (BFloat16.IsNaN(b) || BFloat16.IsInfinity(b) != float.IsInfinity(expected) || BFloat16.IsFinite(b) != float.IsFinite(expected))
                Assert.Fail($"0x{bits:X4}: IsNaN {BFloat16.IsNaN(b)}, IsInfinity {BFloat16.IsInfinity(b)}, IsFinite {BFloat16.IsFinite(b)}");
        }
    }

    [Fact]
    public void ConstantsHaveTheirValues()
    {
        Assert.Equal(1f, (float)BFloat16.One);
        Assert.Equal(0f, (float)BFloat16.Zero);
        Assert.Equal(1f / 128, (float)BFloat16.Epsilon);
        Assert.Equal(float.PositiveInfinity, (float)BFloat16.PositiveInfinity);
        Assert.Equal(float.NegativeInfinity, (float)BFloat16.NegativeInfinity);
        Assert.True(float.IsNaN((float)BFloat16.NaN));
        Assert.Equal(BitConverter.UInt32BitsToSingle(0x7F7F_0000), (float)BFloat16.MaxValue);
        Assert.Equal(-(float)BFloat16.MaxValue, (float)BFloat16.MinValue);
    }

    [Fact]
    public void OtherConversionsGoThroughFloat()
    {
        Assert.Equal((ushort)0x3FC0, ((BFloat16)1.5).Bits);
        Assert.Equal(1.5, (double)BFloat16.FromBits(0x3FC0));
        Assert.Equal((Half)1.5f, (Half)BFloat16.FromBits(0x3FC0));
        Assert.Equal((ushort)0x3FC0, ((BFloat16)(Half)1.5f).Bits);
        Assert.Equal((ushort)0x7F80, ((BFloat16)1e300).Bits);
        Assert.True(BFloat16.IsNaN((BFloat16)double.NaN));
    }

    /// <summary>double -> bf16 must round once, like (Half)double does: going through float rounds twice, and a
    /// double just off a bf16 tie lands on the tie in float, then goes to even, the wrong way.</summary>
    [Theory]
    [InlineData(1.0 + 1.0 / 256 + 1e-12, 0x3F81)] // just above the 0x3F80/0x3F81 tie
    [InlineData(1.0 + 3.0 / 256 - 1e-12, 0x3F81)] // just below the 0x3F81/0x3F82 tie
    [InlineData(-(1.0 + 1.0 / 256 + 1e-12), 0xBF81)]
    [InlineData(1.0 + 1.0 / 256, 0x3F80)]         // the tie itself: to even
    public void FromDoubleRoundsOnce(double value, int expected) =>
        Assert.Equal($"0x{expected:X4}", $"0x{((BFloat16)value).Bits:X4}");

    [Fact]
    public void EqualityFollowsIeee()
    {
        BFloat16 nan = BFloat16.NaN, otherNan = BFloat16.FromBits(0xFFC1);
        BFloat16 zero = BFloat16.Zero, negativeZero = BFloat16.FromBits(0x8000);
        BFloat16 sameNan = BFloat16.NaN;
        Assert.False(nan == sameNan);
        Assert.True(nan != sameNan);
        Assert.True(nan.Equals(sameNan));
        Assert.True(nan.Equals(otherNan));
        Assert.True(nan.Equals((object)otherNan));
        Assert.Equal(nan.GetHashCode(), otherNan.GetHashCode());
        Assert.True(zero == negativeZero);
        Assert.True(zero.Equals(negativeZero));
        Assert.Equal(zero.GetHashCode(), negativeZero.GetHashCode());
        Assert.True(BFloat16.One == (BFloat16)1f);
        Assert.False(BFloat16.One.Equals((object)1f));
        Assert.False(BFloat16.One.Equals(null));
    }

    [Fact]
    public void OrderingFollowsFloat()
    {
        BFloat16[] ascending =
        [
            BFloat16.NaN, BFloat16.NegativeInfinity, BFloat16.MinValue, (BFloat16)(-1f), BFloat16.FromBits(0x8001),
            BFloat16.Zero, BFloat16.FromBits(0x0001), BFloat16.One, BFloat16.MaxValue, BFloat16.PositiveInfinity,
        ];
        for (int i = 0; i < ascending.Length; i++)
        {
            for (int j = 0; j < ascending.Length; j++)
            {
                Assert.Equal(Math.Sign(i.CompareTo(j)), Math.Sign(ascending[i].CompareTo(ascending[j])));
                if (i != 0 && j != 0) // NaN is unordered for the operators
                {
                    Assert.Equal(i < j, ascending[i] < ascending[j]);
                    Assert.Equal(i <= j, ascending[i] <= ascending[j]);
                    Assert.Equal(i > j, ascending[i] > ascending[j]);
                    Assert.Equal(i >= j, ascending[i] >= ascending[j]);
                }
            }
        }
        Assert.Equal(0, BFloat16.Zero.CompareTo(BFloat16.FromBits(0x8000)));
        Assert.False(BFloat16.NaN < BFloat16.One);
        Assert.False(BFloat16.NaN >= BFloat16.One);
    }

    [Fact]
    public void FormatsItsValue()
    {
        Assert.Equal("1.5", ((BFloat16)1.5f).ToString(null, CultureInfo.InvariantCulture));
        Assert.Equal("-2", ((BFloat16)(-2f)).ToString("G", CultureInfo.InvariantCulture));
        Assert.Equal("0.25", ((BFloat16)0.25f).ToString("R", CultureInfo.InvariantCulture));
        Assert.Equal("1,5", ((BFloat16)1.5f).ToString(null, CultureInfo.GetCultureInfo("de-DE")));
        Assert.Equal(float.PositiveInfinity.ToString(CultureInfo.InvariantCulture), BFloat16.PositiveInfinity.ToString(null, CultureInfo.InvariantCulture));
        Assert.Equal("NaN", BFloat16.NaN.ToString(null, CultureInfo.InvariantCulture));
        Assert.Equal(1.5f.ToString(), ((BFloat16)1.5f).ToString());
        Assert.Equal("x=3", string.Create(CultureInfo.InvariantCulture, $"x={(BFloat16)3f}"));

        Span<char> buffer = stackalloc char[16];
        Assert.True(((BFloat16)(-0.5f)).TryFormat(buffer, out int written, "F2", CultureInfo.InvariantCulture));
        Assert.Equal("-0.50", buffer[..written].ToString());
        Assert.False(((BFloat16)(-0.5f)).TryFormat(buffer[..2], out _, "F2", CultureInfo.InvariantCulture));
    }
}
