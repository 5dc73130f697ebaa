namespace LlmKernels.Tests;

/// <summary>
/// LLMK_ISA forces the level of contexts created with CpuIsa.Auto (read by native getenv at context
/// creation, so it is set through libc: see <see cref="NativeEnvironment"/>). An explicit option wins.
/// </summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class IsaEnvironmentTests
{
    [LinuxTheory]
    [InlineData("scalar", CpuIsa.Scalar)]
    [InlineData("avx2", CpuIsa.Avx2)]
    [InlineData("avx512", CpuIsa.Avx512)]
    public void LlmkIsaForcesAutoContexts(string value, CpuIsa isa)
    {
        CpuIsa before;
        using (var unforced = new CpuContext(new CpuContextOptions { ThreadCount = 1 }))
            before = unforced.Isa;
        using (NativeEnvironment.Set("LLMK_ISA", value))
        {
            if (CpuContext.SupportedIsas.Contains(isa))
            {
                using var context = new CpuContext();
                Assert.Equal(isa, context.Isa);
                using var explicitAuto = new CpuContext(new CpuContextOptions { Isa = CpuIsa.Auto, ThreadCount = 1 });
                Assert.Equal(isa, explicitAuto.Isa);
            }
            else
            {
                var e = Assert.Throws<NotSupportedException>(() => new CpuContext());
                Assert.Contains("LLMK_ISA", e.Message);
            }
        }
        using var after = new CpuContext(new CpuContextOptions { ThreadCount = 1 });
        Assert.Equal(before, after.Isa);
    }

    [LinuxFact]
    public void AnExplicitIsaOverridesLlmkIsa()
    {
        CpuIsa best = CpuContext.SupportedIsas.Max();
        using (NativeEnvironment.Set("LLMK_ISA", "scalar"))
        {
            using var context = new CpuContext(new CpuContextOptions { Isa = best, ThreadCount = 1 });
            Assert.Equal(best, context.Isa);
        }
    }

    [LinuxFact]
    public void AnUnknownLlmkIsaIsAnErrorNamingTheVariable()
    {
        using (NativeEnvironment.Set("LLMK_ISA", "avx9000"))
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => new CpuContext());
            Assert.Contains("LLMK_ISA", e.Message);
            Assert.Contains("avx9000", e.Message);
        }
    }
}
