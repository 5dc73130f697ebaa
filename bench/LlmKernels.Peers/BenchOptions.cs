namespace LlmKernels.Peers;

/// <summary>`llmk bench [--quick] [--json FILE] [--threads N]`.</summary>
public sealed record BenchOptions(bool Quick, string? JsonPath, int Threads)
{
    public const string Usage = "usage: llmk bench [--quick] [--json FILE] [--threads N]";

    /// <summary>Parses the arguments after "bench"; null with <paramref name="error"/> set when they are wrong.</summary>
    public static BenchOptions? Parse(IReadOnlyList<string> args, out string error)
    {
        bool quick = false;
        string? json = null;
        int threads = Environment.ProcessorCount;
        error = "";
        for (int i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--json" when i + 1 < args.Count:
                    json = args[++i];
                    break;
                case "--threads" when i + 1 < args.Count:
                    if (!int.TryParse(args[++i], out threads) || threads < 1)
                    {
                        error = $"--threads takes a positive integer, not '{args[i]}'";
                        return null;
                    }
                    break;
                default:
                    error = $"unexpected argument '{args[i]}'";
                    return null;
            }
        }
        return new BenchOptions(quick, json, threads);
    }

    public TimingPlan Timing => Quick ? TimingPlan.Quick : TimingPlan.Full;

    /// <summary>Repetitions of each ceiling probe (roofline.c uses 7).</summary>
    public int CeilingRepetitions => Quick ? 3 : 7;

    public int OverheadIterations => Quick ? 20_000 : 100_000;

    public int OverheadSamples => Quick ? 3 : 7;
}
