namespace LlmKernels.Bindings.Generator.Emit;

/// <summary>
/// The raw P/Invoke layer, one file per kind of declaration: functions (NativeMethods), enums and
/// structs (NativeTypes), integer macros (NativeConstants), and the NativeTypeName attribute that
/// keeps each declaration's C spelling where it differs from the C# one.
/// </summary>
internal sealed class CSharpEmitter(string @namespace, IReadOnlyList<Header> headers)
{
    public const string MethodsFile = "NativeMethods.g.cs";
    public const string TypesFile = "NativeTypes.g.cs";
    public const string ConstantsFile = "NativeConstants.g.cs";
    public const string AttributeFile = "NativeTypeNameAttribute.g.cs";

    public string Methods()
    {
        CodeWriter writer = Begin("using System.Runtime.InteropServices;");
        writer.Line("/// <summary>The C entry points, one per exported function.</summary>");
        writer.Line("internal static unsafe partial class NativeMethods");
        writer.Open();
        foreach (Header header in headers)
        {
            foreach (Function function in header.Functions)
            {
                writer.Separate();
                writer.Summary(function.CName, function.Comment);
                writer.Line($"[LibraryImport(LibraryNames.{header.Library}, EntryPoint = \"{function.CName}\")]");
                writer.Line("[UnmanagedCallConv(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]");
                if (NativeTypeName(function.NativeReturnType, function.ReturnType) is { } returnName)
                {
                    writer.Line($"[return: {returnName}]");
                }
                IEnumerable<string> parameters = function.Parameters.Select(p =>
                    (NativeTypeName(p.NativeType, p.Type) is { } name ? $"[{name}] " : "") + $"{p.Type} {p.Name}");
                writer.Line($"internal static partial {function.ReturnType} {function.Name}({string.Join(", ", parameters)});");
            }
        }
        writer.Close();
        return writer.ToString();
    }

    public string Types()
    {
        CodeWriter writer = Begin("using System.Runtime.InteropServices;");
        foreach (TypeDeclaration type in headers.SelectMany(header => header.Types))
        {
            writer.Separate();
            writer.Summary(type.CName, type.Comment);
            if (type is EnumDeclaration enumeration)
            {
                writer.Line($"internal enum {enumeration.Name}");
                writer.Open();
                foreach (EnumMember member in enumeration.Members)
                {
                    writer.Separate();
                    writer.Summary(member.CName, member.Comment);
                    writer.Line($"{member.Name} = {member.Value},");
                }
                writer.Close();
            }
            else if (type is StructDeclaration structure)
            {
                writer.Line("[StructLayout(LayoutKind.Sequential)]");
                writer.Line($"internal unsafe partial struct {structure.Name}");
                writer.Open();
                foreach (Field field in structure.Fields)
                {
                    writer.Separate();
                    writer.Summary(field.CName, field.Comment);
                    string declared = field.FixedLength is { } length ? $"{field.Type}[{length}]" : field.Type;
                    if (NativeTypeName(field.NativeType, declared) is { } name)
                    {
                        writer.Line($"[{name}]");
                    }
                    writer.Line(field.FixedLength is { } count
                        ? $"public fixed {field.Type} {field.Name}[{count}];"
                        : $"public {field.Type} {field.Name};");
                }
                writer.Close();
            }
        }
        return writer.ToString();
    }

    public string Constants()
    {
        CodeWriter writer = Begin();
        writer.Line("/// <summary>The integer macros of the headers.</summary>");
        writer.Line("internal static partial class NativeConstants");
        writer.Open();
        foreach (Constant constant in headers.SelectMany(header => header.Constants))
        {
            writer.Separate();
            writer.Summary(constant.CName, constant.Comment);
            writer.Line($"[NativeTypeName(\"{Quote(constant.Definition)}\")]");
            writer.Line($"public const {constant.Type} {constant.Name} = {constant.Value};");
        }
        writer.Close();
        return writer.ToString();
    }

    public string Attribute()
    {
        CodeWriter writer = Begin();
        writer.Line("/// <summary>The C spelling of a declaration's type (or a constant's <c>#define</c>) where it differs from the C# one.</summary>");
        writer.Line("[System.AttributeUsage(System.AttributeTargets.Struct | System.AttributeTargets.Enum | System.AttributeTargets.Field | System.AttributeTargets.Parameter | System.AttributeTargets.ReturnValue, AllowMultiple = false, Inherited = true)]");
        writer.Line("internal sealed partial class NativeTypeNameAttribute : System.Attribute");
        writer.Open();
        writer.Line("public NativeTypeNameAttribute(string name) => Name = name;");
        writer.Line();
        writer.Line("public string Name { get; }");
        writer.Close();
        return writer.ToString();
    }

    private CodeWriter Begin(params string[] usings)
    {
        var writer = new CodeWriter();
        writer.Line("// <auto-generated>");
        writer.Line($"// Generated by bindings/LlmKernels.Bindings.Generator from {string.Join(", ", headers.Select(h => h.Path))}.");
        writer.Line("// Do not edit: change the header and regenerate (bindings/README.md).");
        writer.Line("// </auto-generated>");
        writer.Line();
        foreach (string line in usings)
        {
            writer.Line(line);
            writer.Line();
        }
        writer.Line($"namespace {@namespace};");
        writer.Line();
        return writer;
    }

    private static string? NativeTypeName(string native, string managed) =>
        native == managed ? null : $"NativeTypeName(\"{Quote(native)}\")";

    private static string Quote(string text) => text.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
