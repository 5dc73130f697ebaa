"""The device run's table: LlmKernels' CUDA rows (lk_cuda_bench.c) beside PyTorch's on the same GPU
(torch_peers.py), with the ceilings of the same run: memory-bound rows as a fraction of the
device-to-device copy bandwidth, attention prefill as TFLOP/s beside the bf16 matrix-product rate.
Writes the table as Markdown to --markdown (docs/cuda-results.md takes it as it is) and prints it.

  python3 report.py lk.json torch.json [--markdown FILE]
"""
import argparse
import json


def load(path):
    rows, meta = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if "kernel" in row:
                rows[row["kernel"]] = row
            else:
                meta.update(row)
    return rows, meta


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("lk")
    parser.add_argument("torch")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    lk, meta = load(args.lk)
    pt, _ = load(args.torch)
    copy = lk.get("copy", {}).get("gbps", 0.0)
    torch_copy = pt.get("copy", {}).get("bytes", 0.0) / pt.get("copy", {}).get("ms", 1.0) / 1e6 if "copy" in pt else 0.0
    gemm = pt.get("matmul_bf16", {})
    gemm_rate = gemm.get("flops", 0.0) / gemm.get("ms", 1.0) / 1e9 if gemm else 0.0
    lines = [
        f"Device: {meta.get('device', '?')} ({meta.get('sms', '?')} SMs). Ceilings of this run: device-to-device copy "
        f"{copy:.0f} GB/s (LlmKernels' probe), {torch_copy:.0f} GB/s (PyTorch's); bf16 8192^3 matrix product "
        f"{gemm_rate:.0f} TFLOP/s (PyTorch, random data).",
        "",
        "| kernel | shape | LlmKernels ms (min-max) | rate | of ceiling | PyTorch ms | speed-up vs PyTorch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in lk.items():
        if name == "copy":
            continue
        if row.get("flops"):
            rate = f"{row['tflops']:.0f} TFLOP/s"
            share = f"{100.0 * row['tflops'] / gemm_rate:.0f} % of matmul" if gemm_rate else "-"
        else:
            rate = f"{row['gbps']:.0f} GB/s"
            share = f"{100.0 * row['gbps'] / copy:.0f} % of copy" if copy else "-"
        peer = pt.get(name)
        peer_ms = f"{peer['ms']:.4f}" if peer else "-"
        ratio = f"{peer['ms'] / row['ms']:.2f}x" if peer else "-"
        lines.append(f"| {name} | {row['shape']} | {row['ms']:.4f} ({row['ms_min']:.4f}-{row['ms_max']:.4f}) | {rate} | {share} | {peer_ms} | {ratio} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
