namespace LlmKernels.Peers;

/// <summary>`llmk bench [--quick] [--warm] [--json FILE] [--threads N] [--filter FAMILY[,FAMILY...]]`.</summary>
public sealed record BenchOptions(bool Quick, string? JsonPath, int Threads, IReadOnlyList<string> Filter, bool Warm = false)
{
    public static string Usage =>
        $"usage: llmk bench [--quick] [--warm] [--json FILE] [--threads N] [--filter FAMILY[,FAMILY...]]  (families: {string.Join(", ", BenchFamilies.Names)}; a kernel name such as swiglu_split also works)";

    /// <summary>Parses the arguments after "bench"; null with <paramref name="error"/> set when they are wrong.</summary>
    public static BenchOptions? Parse(IReadOnlyList<string> args, out string error)
    {
        bool quick = false, warm = false;
        string? json = null;
        int threads = Environment.ProcessorCount;
        var filter = new List<string>();
        error = "";
        for (int i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--warm":
                    warm = true; // every case timed warm, as before cold timing (A/B against it)
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
                case "--filter" when i + 1 < args.Count:
                    foreach (string name in args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        if (!BenchFamilies.AllCases(quick: false).Any(c => Selects(name, c)))
                        {
                            error = $"--filter: no family or kernel named '{name}'";
                            return null;
                        }
                        filter.Add(name);
                    }
                    break;
                default:
                    error = $"unexpected argument '{args[i]}'";
                    return null;
            }
        }
        return new BenchOptions(quick, json, threads, filter, warm);
    }

    /// <summary>Whether this run measures <paramref name="case"/>: no filter, or a filter naming its family or kernel.</summary>
    public bool Includes(IBenchCase @case) => Filter.Count == 0 || Filter.Any(name => Selects(name, @case));

    private static bool Selects(string name, IBenchCase @case) =>
        string.Equals(name, @case.Family, StringComparison.OrdinalIgnoreCase) || string.Equals(name, @case.Kernel, StringComparison.OrdinalIgnoreCase);

    /// <summary>A quick run leaves out the naive loops on shapes that move at least this much: seconds per call, and no part of the bar.</summary>
    public const long QuickNaiveMaxBytes = 64L << 20;

    /// <summary>The peers this run measures <paramref name="case"/> against; a quick run leaves the naive loops out of compute-bound cases too.</summary>
    public IEnumerable<string> PeersFor(IBenchCase @case) =>
        @case.Peers.Where(peer => !(Quick && peer == PeerNames.Naive
                                    && (@case.BytesFor(PeerNames.LlmKernels) >= QuickNaiveMaxBytes || @case.Flops is not null)));

    public TimingPlan Timing => Quick ? TimingPlan.Quick : TimingPlan.Full;

    public ColdPlan ColdTiming => Quick ? ColdPlan.Quick : ColdPlan.Full;

    /// <summary>Repetitions of each ceiling probe (roofline.c uses 7).</summary>
    public int CeilingRepetitions => Quick ? 3 : 7;

    public int OverheadIterations => Quick ? 20_000 : 100_000;

    public int OverheadSamples => Quick ? 3 : 7;
}
