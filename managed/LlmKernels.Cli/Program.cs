using LlmKernels.Cli;

// llmk info | check | bench [--quick] [--warm] [--json FILE] [--threads N] [--filter F] | demo
return args.FirstOrDefault() switch
{
    "info" => InfoCommand.Run(Console.Out),
    "check" => CheckCommand.Run(Console.Out),
    "bench" => LlmKernels.Peers.BenchCommand.Run(args[1..], Console.Out),
    "demo" => DemoCommand.Run(Console.Out),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: llmk <command>
          info                          CPU, ISA levels (available and chosen), threads, library and ABI versions, CUDA
          check                         every kernel x ISA x dtype against the float64 reference on this machine
          bench [--quick] [--warm] [--json FILE] [--threads N] [--filter FAMILY[,FAMILY...]]
                                        this machine's ceilings, then each kernel's GB/s and ratios to peers
                                        (DRAM-sized cases timed cold, after a cache flush; --warm: all warm)
          demo                          a Llama-sized residual add + RMSNorm, end to end
        LLMK_ISA=scalar|avx2|avx512 forces an ISA level for contexts created with CpuIsa.Auto.
        """);
    return 2;
}
