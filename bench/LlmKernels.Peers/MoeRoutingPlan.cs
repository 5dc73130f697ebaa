namespace LlmKernels.Peers;

/// <summary>
/// The routing plan of <c>[tokens, k]</c> expert ids (docs/moe.md): the slots (<c>s = t * k + j</c>) ordered by expert,
/// stable, no padding and every expert local. <see cref="SortedSlots"/>: the slot each expert-ordered row holds;
/// <see cref="SlotRows"/>: the inverse, each slot's row; <see cref="ExpertOffsets"/>: each expert's first row.
/// Built either by the reference counting sort here (what every peer but LlmKernels is given, and the check's
/// reference) or by LlmKernels' <c>Moe.Routing</c> (its own setup, untimed).
/// </summary>
public sealed class MoeRoutingPlan
{
    private MoeRoutingPlan(int slots, int experts)
    {
        SortedSlots = new int[slots];
        SlotRows = new int[slots];
        ExpertCounts = new int[experts];
        ExpertOffsets = new int[experts + 1];
    }

    public int[] SortedSlots { get; }
    public int[] SlotRows { get; }
    public int[] ExpertCounts { get; }
    public int[] ExpertOffsets { get; }

    /// <summary>The plan as the contract defines it: count, offsets, then each slot placed in ascending slot order.</summary>
    public static MoeRoutingPlan Reference(ReadOnlySpan<int> expertIds, int experts)
    {
        var plan = new MoeRoutingPlan(expertIds.Length, experts);
        foreach (int id in expertIds)
            plan.ExpertCounts[id]++;
        for (int e = 0; e < experts; e++)
            plan.ExpertOffsets[e + 1] = plan.ExpertOffsets[e] + plan.ExpertCounts[e];
        var next = plan.ExpertOffsets[..experts];
        for (int s = 0; s < expertIds.Length; s++)
        {
            int row = next[expertIds[s]]++;
            plan.SortedSlots[row] = s;
            plan.SlotRows[s] = row;
        }
        return plan;
    }

    /// <summary>The plan from LlmKernels' <c>lk_moe_routing</c> (throws EntryPointNotFoundException on a build without it).</summary>
    public static MoeRoutingPlan LlmKernels(ReadOnlySpan<int> expertIds, int tokens, int topK, int experts, CpuContext context)
    {
        var plan = new MoeRoutingPlan(tokens * topK, experts);
        Moe.Routing(expertIds, tokens, topK, experts, plan.ExpertCounts, plan.ExpertOffsets, plan.SortedSlots, plan.SlotRows,
                    context: context);
        return plan;
    }
}
