namespace LlmKernels.Peers;

/// <summary>
/// Checks a norm peer's result against a float64 reference before it is timed, so that a table
/// never shows the speed of a wrong answer. The reference follows the C ABI's rounding points: the
/// fused form's residual is rounded to the element type, stored, and normalised from the stored
/// value; LayerNorm's statistics are two passes (mean, then the biased variance) in float64.
/// </summary>
public static unsafe class NormCheck
{
    /// <summary>Runs the peer once from fresh inputs and compares y (and the updated residual).</summary>
    public static CheckResult Run(INormPeer peer, INormInputs inputs) => CheckResult.RunOnce(peer, p => Compare(p, inputs));

    public static CheckResult Compare(INormPeer peer, INormInputs inputs)
    {
        long hidden = inputs.Hidden;
        BenchDtype dtype = peer.Dtype;
        float* x = inputs.X.As<float>(), w = inputs.Weight.As<float>();
        float* b = inputs.Bias is { } bias ? bias.As<float>() : null;
        float* residual = inputs.Fused || inputs.Post ? inputs.Residual!.As<float>() : null;
        var v = new double[hidden];
        var errors = new ErrorTracker(ErrorTracker.Tolerance(dtype));

        foreach (long r in ErrorTracker.SpreadRows(inputs.Rows))
        {
            double sum = 0;
            for (long j = 0; j < hidden; j++)
            {
                long i = r * hidden + j;
                // The fused sum is rounded to the element type once, as the ABI specifies.
                v[j] = residual == null ? x[i] : Elements.Round(x[i] + residual[i], dtype);
                sum += v[j];
                if (inputs.Fused)
                    errors.Track(Elements.Load(peer.ResidualOut, i, dtype), v[j], $"residual[{r}, {j}]");
            }
            double mean = inputs.Layer ? sum / hidden : 0;
            double squares = 0;
            for (long j = 0; j < hidden; j++)
                squares += (v[j] - mean) * (v[j] - mean);
            double scale = 1.0 / Math.Sqrt(squares / hidden + inputs.Epsilon);
            for (long j = 0; j < hidden; j++)
                errors.Track(Elements.Load(peer.Y, r * hidden + j, dtype), (v[j] - mean) * scale * w[j] + (b == null ? 0 : b[j]), $"y[{r}, {j}]");
        }
        return errors.Result();
    }
}
