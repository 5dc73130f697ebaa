namespace LlmKernels.Peers;

/// <summary>The outcome of comparing a peer's output with the float64 reference.</summary>
public readonly record struct CheckResult(bool Ok, double MaxError, double Tolerance, string Detail);

/// <summary>
/// Checks a peer's result against a float64 reference before it is timed, so that a table never
/// shows the speed of a wrong answer. The reference follows the C ABI's rounding points: the fused
/// form's residual is rounded to the element type, stored, and normalised from the stored value.
/// </summary>
public static unsafe class RmsNormCheck
{
    /// <summary>Rows checked at most; beyond that an even spread of rows, first and last included.</summary>
    private const long MaxRowsChecked = 256;

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

    /// <summary>Runs the peer once from fresh inputs and compares y (and the updated residual).</summary>
    public static CheckResult Run(IRmsNormPeer peer, RmsNormInputs inputs)
    {
        peer.Reset();
        peer.Run();
        var result = Compare(peer, inputs);
        peer.Reset();
        return result;
    }

    public static CheckResult Compare(IRmsNormPeer peer, RmsNormInputs inputs)
    {
        var @case = inputs.Case;
        long rows = @case.Rows, hidden = @case.Hidden;
        BenchDtype dtype = peer.Dtype;
        double tolerance = Tolerance(dtype);
        float* x = inputs.X.As<float>(), w = inputs.Weight.As<float>();
        float* residual = @case.Fused ? inputs.Residual!.As<float>() : null;
        var sum = new double[hidden];

        double maxError = 0;
        string worst = "";
        long step = Math.Max(1, (rows - 1) / (MaxRowsChecked - 1));
        for (long r = 0; r < rows; r = r == rows - 1 ? rows : Math.Min(r + step, rows - 1))
        {
            double squares = 0;
            for (long j = 0; j < hidden; j++)
            {
                long i = r * hidden + j;
                // The fused sum is rounded to the element type once, as the ABI specifies.
                double v = residual == null ? x[i] : Elements.Round(x[i] + residual[i], dtype);
                sum[j] = v;
                squares += v * v;
                if (residual != null)
                    Track(Elements.Load(peer.ResidualOut, i, dtype), v, r, j, "residual");
            }
            double scale = 1.0 / Math.Sqrt(squares / hidden + RmsNormCase.Epsilon);
            for (long j = 0; j < hidden; j++)
                Track(Elements.Load(peer.Y, r * hidden + j, dtype), sum[j] * scale * w[j], r, j, "y");
        }

        bool ok = maxError <= tolerance;
        return new CheckResult(ok, maxError, tolerance, ok ? "" : $"max error {maxError:G3} > {tolerance:G3} at {worst}");

        void Track(float got, double expected, long row, long column, string tensor)
        {
            double error = Math.Abs(got - expected) / Math.Max(Math.Abs(expected), 1.0);
            // NaN compares false: catch it explicitly, it is the most common garbage.
            if (double.IsNaN(error))
                error = double.PositiveInfinity;
            if (error > maxError)
            {
                maxError = error;
                worst = $"{tensor}[{row}, {column}] = {got:G6}, expected {expected:G6}";
            }
        }
    }
}
