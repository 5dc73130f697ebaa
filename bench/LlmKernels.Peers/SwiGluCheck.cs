namespace LlmKernels.Peers;

/// <summary>
/// Checks a SwiGLU peer's output against float64: <c>gate / (1 + exp(-gate)) * up</c>, rounded once
/// to the element type by the peer (the ABI's single rounding), on every token or 256 spread ones.
/// </summary>
public static unsafe class SwiGluCheck
{
    public static CheckResult Run(ISwiGluPeer peer, SwiGluInputs inputs)
    {
        peer.Reset();
        peer.Run();
        long d = inputs.Case.D;
        float* gate = inputs.Gate.As<float>(), up = inputs.Up.As<float>();
        var errors = new ErrorTracker(ErrorTracker.Tolerance(peer.Dtype));
        foreach (long t in ErrorTracker.SpreadRows(inputs.Case.Tokens))
            for (long i = 0; i < d; i++)
            {
                long index = t * d + i;
                double g = gate[index];
                errors.Track(Elements.Load(peer.Out, index, peer.Dtype), g / (1 + Math.Exp(-g)) * up[index], $"out[{t}, {i}]");
            }
        peer.Reset();
        return errors.Result();
    }
}
