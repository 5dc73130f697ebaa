using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using LlmKernels.Interop;
using Xunit.Abstractions;

namespace LlmKernels.Tests;

/// <summary>
/// The generated structs have the layout the native library was compiled with: for every struct in
/// LlmKernels.Interop, its size and each field's offset equal lk_struct_size / lk_struct_field_offset
/// (a struct or field the native table does not know, -1, fails). And the ABI versions agree.
/// </summary>
public sealed partial class LayoutTests(ITestOutputHelper output)
{
    private static readonly Assembly Library = typeof(Kernels).Assembly;

    /// <summary>Top-level structs of the interop namespace: what the generator emits from the header.</summary>
    public static TheoryData<string> Structs()
    {
        var data = new TheoryData<string>();
        foreach (Type type in InteropStructs())
            data.Add(type.Name);
        return data;
    }

    private static IEnumerable<Type> InteropStructs() =>
        Library.GetTypes()
               .Where(t => t.Namespace == "LlmKernels.Interop" && t.IsValueType && !t.IsEnum && !t.IsNested &&
                           t.GetCustomAttribute<CompilerGeneratedAttribute>() is null)
               .OrderBy(t => t.Name, StringComparer.Ordinal);

    [Fact]
    public void TheParamsAndOptionsStructsAreFound()
    {
        var names = InteropStructs().Select(t => t.Name).ToList();
        Assert.Contains(nameof(RmsNormParams), names);
        Assert.Contains(nameof(CpuOptions), names);
        Assert.Contains(nameof(CpuContextInfo), names);
    }

    [Theory, MemberData(nameof(Structs))]
    public unsafe void SizeAndOffsetsMatchTheNativeLibrary(string typeName)
    {
        Type type = InteropStructs().Single(t => t.Name == typeName);
        string cStruct = CName(type);
        output.WriteLine($"{type.Name} is {cStruct}");

        long nativeSize = StructSize(cStruct);
        Assert.True(nativeSize >= 0, $"lk_struct_size(\"{cStruct}\") is {nativeSize}: the native layout table lacks {cStruct}");
        int managedSize = (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;
        Assert.Equal(nativeSize, managedSize);
        Assert.Equal(nativeSize, Marshal.SizeOf(type));

        FieldInfo[] fields = type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        Assert.NotEmpty(fields);
        foreach (FieldInfo field in fields)
        {
            string cField = CName(field);
            long nativeOffset = FieldOffset(cStruct, cField);
            Assert.True(nativeOffset >= 0,
                        $"lk_struct_field_offset(\"{cStruct}\", \"{cField}\") is {nativeOffset}: the native layout table lacks {type.Name}.{field.Name}");
            Assert.True(nativeOffset == Marshal.OffsetOf(type, field.Name),
                        $"{cStruct}.{cField}: native offset {nativeOffset}, managed {type.Name}.{field.Name} at {Marshal.OffsetOf(type, field.Name)}");
        }
    }

    [Fact]
    public void UnknownNamesAreMinusOne()
    {
        Assert.Equal(-1, StructSize("lk_no_such_struct"));
        Assert.Equal(-1, FieldOffset("lk_rms_norm_params", "no_such_field"));
        Assert.Equal(-1, FieldOffset("lk_no_such_struct", "x"));
    }

    [Fact]
    public void AbiVersionsAgree() => Assert.Equal(NativeConstants.AbiVersion, NativeMethods.AbiVersion());

    private static unsafe long StructSize(string cStruct)
    {
        byte[] name = Utf8Z(cStruct);
        fixed (byte* p = name)
            return NativeMethods.StructSize(p);
    }

    private static unsafe long FieldOffset(string cStruct, string cField)
    {
        byte[] structName = Utf8Z(cStruct), fieldName = Utf8Z(cField);
        fixed (byte* s = structName)
        fixed (byte* f = fieldName)
            return NativeMethods.StructFieldOffset(s, f);
    }

    private static byte[] Utf8Z(string text) => Encoding.UTF8.GetBytes(text + "\0");

    // The generator writes the C name first in each summary (<summary><c>lk_rms_norm_params</c>: ...);
    // without the documentation file, its naming rule is inverted (RmsNormParams -> lk_rms_norm_params).
    private static string CName(Type type) =>
        DocumentedCName("T:" + type.FullName) ?? "lk_" + SnakeCase(type.Name);

    private static string CName(FieldInfo field) =>
        DocumentedCName("F:" + field.DeclaringType!.FullName + "." + field.Name) ?? SnakeCase(field.Name);

    private static string SnakeCase(string pascal) => UpperAfterAnything().Replace(pascal, "_$1").ToLowerInvariant();

    [GeneratedRegex("(?<=.)([A-Z])")]
    private static partial Regex UpperAfterAnything();

    private static readonly Lazy<Dictionary<string, string>> Documentation = new(() =>
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        string path = Path.ChangeExtension(Library.Location, ".xml");
        if (!File.Exists(path))
            return names;
        foreach (XElement member in XDocument.Load(path).Descendants("member"))
        {
            XElement? code = member.Element("summary")?.Element("c");
            if (code is not null && member.Attribute("name") is { } name)
                names[name.Value] = code.Value.Trim();
        }
        return names;
    });

    private static string? DocumentedCName(string memberId) => Documentation.Value.GetValueOrDefault(memberId);
}
