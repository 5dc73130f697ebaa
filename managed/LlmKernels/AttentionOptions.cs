namespace LlmKernels;

/// <summary>
/// The scalar settings of <see cref="Attention"/>: scale, soft cap, causal mask and sliding window.
/// The defaults (<c>new AttentionOptions()</c>, or null) are FlashAttention's: scale <c>1/sqrt(headDim)</c>,
/// no cap, no mask, no window. Formulas: docs/attention.md.
/// </summary>
public sealed record AttentionOptions
{
    /// <summary>Hides key <c>j</c> from a query at key position <c>p</c> when <c>j &gt; p</c>; bottom-right aligned,
    /// as FlashAttention 2.1 and later (a sequence's queries are its last keys).</summary>
    public bool Causal { get; init; }

    /// <summary>Multiplies <c>q . k</c>: finite; 0 (the default) means <c>1 / sqrt(headDim)</c>.</summary>
    public float Scale { get; init; }

    /// <summary>Caps scores as <c>Softcap * tanh(s / Softcap)</c> (Gemma 2, Grok), before ALiBi and the bias: 0 (the default) for
    /// none, otherwise positive and finite.</summary>
    public float Softcap { get; init; }

    /// <summary>Keys further than this before the query's position are hidden (Mistral's sliding window is
    /// <c>sliding_window - 1</c> here with <see cref="WindowRight"/> 0): -1 (the default) for unbounded, otherwise non-negative.</summary>
    public int WindowLeft { get; init; } = -1;

    /// <summary>Keys further than this after the query's position are hidden: -1 (the default) for unbounded, otherwise
    /// non-negative.</summary>
    public int WindowRight { get; init; } = -1;
}
