namespace LlmKernels.Bindings.Generator;

/// <summary>
/// C names to C# names: the lk_/LK_ prefix goes, the rest is split on '_' and each part written with
/// its first letter upper case and the rest lower case (lk_rms_norm_params -> RmsNormParams,
/// LK_DTYPE_BF16 -> Bf16); parameters keep their C spelling in camelCase (out_context -> outContext).
/// </summary>
internal static class Naming
{
    private static readonly HashSet<string> Keywords =
    [
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const",
        "continue", "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern",
        "false", "finally", "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface",
        "internal", "is", "lock", "long", "namespace", "new", "null", "object", "operator", "out", "override",
        "params", "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
        "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true", "try", "typeof",
        "uint", "ulong", "unchecked", "unsafe", "ushort", "using", "virtual", "void", "volatile", "while",
    ];

    /// <summary>Types, functions, fields and macros: lk_rms_norm -> RmsNorm, x_stride -> XStride.</summary>
    public static string Pascal(string cName) => Join(StripPrefix(cName, "lk_"), upperFirst: true);

    /// <summary>LK_DTYPE_F32 in lk_dtype -> F32; LK_ERR_BUSY in lk_status -> ErrBusy.</summary>
    public static string EnumMember(string enumCName, string memberCName)
    {
        string ownPrefix = enumCName.ToUpperInvariant() + "_";
        string rest = memberCName.StartsWith(ownPrefix, StringComparison.Ordinal)
            ? memberCName[ownPrefix.Length..]
            : StripPrefix(memberCName, "lk_");
        return Join(rest, upperFirst: true);
    }

    /// <summary>Parameters: out_context -> outContext, params -> @params.</summary>
    public static string Camel(string cName) => Escape(Join(cName, upperFirst: false));

    private static string StripPrefix(string name, string prefix) =>
        name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? name[prefix.Length..] : name;

    private static string Join(string name, bool upperFirst)
    {
        string[] parts = name.Split('_', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new GeneratorException($"'{name}' gives an empty C# name.");
        }

        var result = string.Concat(parts.Select((part, i) =>
            (i == 0 && !upperFirst ? char.ToLowerInvariant(part[0]) : char.ToUpperInvariant(part[0]))
            + part[1..].ToLowerInvariant()));
        return char.IsAsciiDigit(result[0]) ? "_" + result : result;
    }

    private static string Escape(string identifier) => Keywords.Contains(identifier) ? "@" + identifier : identifier;
}
