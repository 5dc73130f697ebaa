using LlmKernels.Bindings.Generator.Clang;
using static LlmKernels.Bindings.Generator.Clang.LibClang;

namespace LlmKernels.Bindings.Generator;

/// <summary>
/// C types to blittable C# types. Fixed-width typedefs map by name, so the result does not depend
/// on the target clang parses for; a pointer to an opaque struct is a handle (nint); anything the
/// table does not know is an error naming the type, never a guess.
/// </summary>
internal static class TypeMapper
{
    private static readonly Dictionary<string, string> Typedefs = new()
    {
        ["int8_t"] = "sbyte", ["int16_t"] = "short", ["int32_t"] = "int", ["int64_t"] = "long",
        ["uint8_t"] = "byte", ["uint16_t"] = "ushort", ["uint32_t"] = "uint", ["uint64_t"] = "ulong",
        ["size_t"] = "nuint", ["ptrdiff_t"] = "nint", ["intptr_t"] = "nint", ["uintptr_t"] = "nuint",
    };

    /// <summary>The C# spelling of <paramref name="type"/>; <paramref name="where"/> names the use in errors.</summary>
    public static string Map(CXType type, string where)
    {
        switch (type.Kind)
        {
            case CXTypeKind.Elaborated:
                return Map(clang_Type_getNamedType(type), where);

            // The typedef that defines an enum or struct names it; any other typedef is an alias.
            case CXTypeKind.Typedef:
                string name = Take(clang_getTypedefName(type));
                if (Typedefs.TryGetValue(name, out string? mapped))
                {
                    return mapped;
                }
                CXType underlying = Unelaborated(clang_getTypedefDeclUnderlyingType(clang_getTypeDeclaration(type)));
                if (underlying.Kind is CXTypeKind.Record or CXTypeKind.Enum)
                {
                    RequireComplete(underlying, where);
                    return Naming.Pascal(name);
                }
                return Map(underlying, where);

            case CXTypeKind.Record or CXTypeKind.Enum:
                RequireComplete(type, where);
                return Naming.Pascal(clang_getTypeDeclaration(type).Spelling());

            case CXTypeKind.Pointer:
                CXType pointee = clang_getPointeeType(type);
                if (IsOpaque(pointee))
                {
                    return "nint";
                }
                if (clang_getCanonicalType(pointee).Kind == CXTypeKind.FunctionProto)
                {
                    throw Unsupported(type, where, "function pointers are not supported yet");
                }
                return Map(pointee, where) + "*";

            case CXTypeKind.Long or CXTypeKind.ULong:
                throw Unsupported(type, where, "long is 32-bit on Windows and 64-bit on Linux; use int32_t or int64_t");
        }

        return Primitive(type.Kind) ?? throw Unsupported(type, where, "the generator has no mapping for it");
    }

    /// <summary>The type an elaborated type (<c>struct lk_x</c>, <c>enum lk_y</c>) names.</summary>
    public static CXType Unelaborated(CXType type) => type.Kind == CXTypeKind.Elaborated ? clang_Type_getNamedType(type) : type;

    /// <summary>A struct declared but never defined in the headers, such as lk_cpu_context.</summary>
    public static bool IsOpaque(CXType type)
    {
        CXType canonical = clang_getCanonicalType(type);
        return canonical.Kind == CXTypeKind.Record && clang_Type_getSizeOf(canonical) == TypeLayoutIncomplete;
    }

    private static string? Primitive(CXTypeKind kind) => kind switch
    {
        CXTypeKind.Void => "void",
        CXTypeKind.Char_S or CXTypeKind.Char_U or CXTypeKind.UChar => "byte",
        CXTypeKind.SChar => "sbyte",
        CXTypeKind.Short => "short",
        CXTypeKind.UShort => "ushort",
        CXTypeKind.Int => "int",
        CXTypeKind.UInt => "uint",
        CXTypeKind.LongLong => "long",
        CXTypeKind.ULongLong => "ulong",
        CXTypeKind.Float => "float",
        CXTypeKind.Double => "double",
        _ => null,
    };

    private static void RequireComplete(CXType type, string where)
    {
        if (IsOpaque(type))
        {
            throw Unsupported(type, where, "an opaque struct can only be used through a pointer");
        }
        CXType canonical = clang_getCanonicalType(type);
        if (canonical.Kind == CXTypeKind.Record && clang_getTypeDeclaration(canonical).Kind != CXCursorKind.StructDecl)
        {
            throw Unsupported(type, where, "unions are not supported yet");
        }
    }

    private static GeneratorException Unsupported(CXType type, string where, string why) =>
        new($"{where}: unsupported C type '{type.Spelling()}': {why}.");
}
