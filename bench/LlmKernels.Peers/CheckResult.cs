namespace LlmKernels.Peers;

/// <summary>
/// The outcome of comparing a peer's output with the float64 reference. <see cref="Detail"/>: why it failed, or
/// what a pass noted (MoE gating: tokens that differ from the reference only by ties); empty otherwise.
/// </summary>
public readonly record struct CheckResult(bool Ok, double MaxError, double Tolerance, string Detail)
{
    /// <summary>
    /// Runs <paramref name="peer"/> once from fresh inputs, compares its outputs, and puts the inputs back for
    /// the timing that follows (in-place forms update them): the checks of every family whose peers can write
    /// their inputs.
    /// </summary>
    public static CheckResult RunOnce<TPeer>(TPeer peer, Func<TPeer, CheckResult> compare) where TPeer : IBenchPeer
    {
        peer.Reset();
        peer.Run();
        var result = compare(peer);
        peer.Reset();
        return result;
    }
}

/// <summary>
/// The largest error of a peer's outputs against a float64 reference, relative to
/// max(|reference|, 1), and where it occurred; every family's check feeds it element by element.
/// </summary>
public sealed class ErrorTracker(double tolerance)
{
    private string _worst = "";

    public double MaxError { get; private set; }

    /// <summary>
    /// Error allowed, relative to max(|reference|, 1): a few units in the last place of the element
    /// type, enough for one extra intermediate rounding, far below what a wrong kernel produces.
    /// </summary>
    public static double Tolerance(BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => 1e-4,
        BenchDtype.F16 => 1.0 / 512,
        _ => 1.0 / 64,
    };

    public void Track(float got, double expected, string where) => Track(got, expected, Math.Max(Math.Abs(expected), 1.0), where);

    /// <summary>
    /// The error relative to <paramref name="scale"/> instead (positive): the magnitude the result's rounding is
    /// measured against, as <c>sum |w x|</c> for a weighted sum whose terms may cancel (MoE combine).
    /// </summary>
    public void Track(float got, double expected, double scale, string where)
    {
        double error = Math.Abs(got - expected) / scale;
        // NaN compares false: catch it explicitly, it is the most common garbage.
        if (double.IsNaN(error))
            error = double.PositiveInfinity;
        if (error > MaxError)
        {
            MaxError = error;
            _worst = $"{where} = {got:G6}, expected {expected:G6}";
        }
    }

    public CheckResult Result()
    {
        bool ok = MaxError <= tolerance;
        return new CheckResult(ok, MaxError, tolerance, ok ? "" : $"max error {MaxError:G3} > {tolerance:G3} at {_worst}");
    }

    /// <summary>The rows a check visits: every row up to <paramref name="limit"/>, else an even spread, first and last included.</summary>
    public static IEnumerable<long> SpreadRows(long rows, long limit = 256)
    {
        long step = Math.Max(1, (rows - 1) / (limit - 1));
        for (long r = 0; r < rows; r = r == rows - 1 ? rows : Math.Min(r + step, rows - 1))
            yield return r;
    }
}
