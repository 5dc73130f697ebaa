namespace LlmKernels.Peers;

/// <summary>
/// Checks a RoPE peer against float64: for each pair (a, b) = (x[j], x[j + rot_dim/2]) (GPT-J:
/// (x[2j], x[2j + 1])) of every q
/// and k head, a' = a cos - b sin and b' = b cos + a sin with the angle position x inv_freq[j]
/// computed in double, on every token or 256 spread ones; a peer that rotates the fused buffer in
/// place must also leave the v heads exactly as they were.
/// </summary>
public static unsafe class RopeCheck
{
    public static CheckResult Run(IRopePeer peer, RopeInputs inputs) => CheckResult.RunOnce(peer, p => Compare(p, inputs));

    public static CheckResult Compare(IRopePeer peer, RopeInputs inputs)
    {
        const long half = RopeCase.RotDim / 2;
        const long heads = RopeCase.QHeads + RopeCase.KvHeads;
        BenchDtype dtype = peer.Dtype;
        float* qkv = inputs.Qkv.As<float>();
        var errors = new ErrorTracker(ErrorTracker.Tolerance(dtype) + peer.AngleTolerance);
        var cos = new double[half];
        var sin = new double[half];
        foreach (long t in ErrorTracker.SpreadRows(inputs.Case.Tokens))
        {
            int position = inputs.Positions.As<int>()[t];
            for (long j = 0; j < half; j++)
            {
                double angle = position * RopeCase.InverseFrequency(j);
                cos[j] = Math.Cos(angle);
                sin[j] = Math.Sin(angle);
            }
            for (long h = 0; h < heads; h++)
            {
                float* x = qkv + t * RopeCase.TokenStride + h * RopeCase.HeadDim;
                long head = t * peer.TokenStride + h * RopeCase.HeadDim;
                string name = h < RopeCase.QHeads ? $"q[{t}, {h}" : $"k[{t}, {h - RopeCase.QHeads}";
                for (long j = 0; j < half; j++)
                {
                    long first = inputs.Case.First(j), second = inputs.Case.Second(j);
                    double a = x[first], b = x[second];
                    errors.Track(Elements.Load(peer.Qk, head + first, dtype), a * cos[j] - b * sin[j], $"{name}, {first}]");
                    errors.Track(Elements.Load(peer.Qk, head + second, dtype), b * cos[j] + a * sin[j], $"{name}, {second}]");
                }
            }
            if (peer.TokenStride == RopeCase.TokenStride)
                for (long i = heads * RopeCase.HeadDim; i < RopeCase.TokenStride; i++)
                    errors.Track(Elements.Load(peer.Qk, t * RopeCase.TokenStride + i, dtype), qkv[t * RopeCase.TokenStride + i], $"v[{t}, {i - heads * RopeCase.HeadDim}] (must be untouched)");
        }
        return errors.Result();
    }
}
