namespace LlmKernels.Bindings.Generator;

// What the emitters need from a header: each declaration's C spelling, its C# name and the
// comment text written beside it in the header (empty when there is none).

/// <summary>One header: <paramref name="Path"/> is repository-relative, <paramref name="Library"/> a LibraryNames constant.</summary>
internal sealed record Header(
    string Path, string Library, IReadOnlyList<TypeDeclaration> Types, IReadOnlyList<Function> Functions, IReadOnlyList<Constant> Constants);

internal abstract record TypeDeclaration(string CName, string Name, IReadOnlyList<string> Comment);

internal sealed record EnumDeclaration(string CName, string Name, IReadOnlyList<string> Comment, IReadOnlyList<EnumMember> Members)
    : TypeDeclaration(CName, Name, Comment);

internal sealed record EnumMember(string CName, string Name, long Value, IReadOnlyList<string> Comment);

internal sealed record StructDeclaration(string CName, string Name, IReadOnlyList<string> Comment, IReadOnlyList<Field> Fields)
    : TypeDeclaration(CName, Name, Comment);

/// <summary>A struct field; <paramref name="FixedLength"/> is set for a C array, emitted as a fixed buffer.</summary>
internal sealed record Field(string CName, string Name, string Type, string NativeType, int? FixedLength, IReadOnlyList<string> Comment);

internal sealed record Function(
    string CName, string Name, string ReturnType, string NativeReturnType, IReadOnlyList<Parameter> Parameters, IReadOnlyList<string> Comment);

internal sealed record Parameter(string CName, string Name, string Type, string NativeType);

/// <summary>An integer macro; <paramref name="Definition"/> is its <c>#define</c> line, <paramref name="Value"/> a C# literal.</summary>
internal sealed record Constant(string CName, string Name, string Type, string Value, string Definition, IReadOnlyList<string> Comment);
