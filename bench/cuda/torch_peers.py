"""PyTorch on the same GPU and shapes as bench/cuda/lk_cuda_bench.c: the peers the CUDA backend is
measured against (the issue's F.rms_norm, F.silu(a) * b, F.scaled_dot_product_attention,
torch.topk, and PyTorch's eager forms of the rest), plus the two ceilings measured through
PyTorch in the same run: a device-to-device copy and a bf16 8192^3 matrix product on random data.

Timed with CUDA events after warm-up, median of the repetitions (as the C benchmark); one JSON
object per line to --json. Shapes and byte counts mirror lk_cuda_bench.c's: keep them in step.
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2], times[0], times[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 5 if args.quick else 20
    dev = torch.device("cuda")
    bf16 = torch.bfloat16
    out = open(args.json, "w")

    def emit(kernel, shape, fn, bytes_=0.0, flops=0.0):
        ms, lo, hi = timed(fn, reps)
        row = {"kernel": kernel, "shape": shape, "ms": ms, "ms_min": lo, "ms_max": hi, "bytes": bytes_, "flops": flops}
        out.write(json.dumps(row) + "\n")
        rate = f"{bytes_ / ms / 1e6:8.0f} GB/s" if bytes_ else f"{flops / ms / 1e9:8.1f} TFLOP/s"
        print(f"torch {kernel:28s} {shape:40s} {ms:9.4f} ms {rate}", flush=True)
        return ms

    torch.manual_seed(0)
    # ceilings
    a = torch.randn(1 << 29, device=dev, dtype=bf16)
    b = torch.empty_like(a)
    emit("copy", "1 GiB", lambda: b.copy_(a), bytes_=2.0 * a.numel() * 2)
    del a, b
    m = torch.randn(8192, 8192, device=dev, dtype=bf16)
    n = torch.randn(8192, 8192, device=dev, dtype=bf16)
    emit("matmul_bf16", "8192^3", lambda: m @ n, flops=2.0 * 8192 ** 3)
    del m, n

    # norms
    rows, hidden = 16384, 8192
    x = torch.randn(rows, hidden, device=dev, dtype=bf16)
    r = torch.randn_like(x)
    w = torch.randn(hidden, device=dev, dtype=bf16)
    bias = torch.randn(hidden, device=dev, dtype=bf16)
    n_el = rows * hidden
    emit("rms_norm", "bf16 [16384, 8192]", lambda: F.rms_norm(x, (hidden,), w, 1e-5), bytes_=2.0 * n_el * 2)

    def fused_add():
        s = x + r
        return s, F.rms_norm(s, (hidden,), w, 1e-5)

    emit("fused_add_rms_norm", "bf16 [16384, 8192]", fused_add, bytes_=4.0 * n_el * 2)
    emit("layer_norm", "bf16 [16384, 8192]", lambda: F.layer_norm(x, (hidden,), w, bias, 1e-5), bytes_=2.0 * n_el * 2)
    del x, r

    # SwiGLU over a packed gate_up row
    tokens, d = 16384, 14336
    gate_up = torch.randn(tokens, 2 * d, device=dev, dtype=bf16)
    emit("swiglu", "bf16 [16384, 2 x 14336]", lambda: F.silu(gate_up[:, :d]) * gate_up[:, d:], bytes_=3.0 * tokens * d * 2)
    emit("geglu_tanh", "bf16 [16384, 2 x 14336]", lambda: F.gelu(gate_up[:, :d], approximate="tanh") * gate_up[:, d:],
         bytes_=3.0 * tokens * d * 2)
    del gate_up

    # RoPE (NeoX) on q and k inside a fused qkv buffer, eager (rotate_half)
    heads, kv_heads, dim = 32, 8, 128
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * dim, device=dev, dtype=bf16)
    cache = torch.randn(16384, dim, device=dev, dtype=torch.float32)
    pos = torch.arange(tokens, device=dev) % 16384

    def rope():
        cs = cache[pos]
        cos, sin = cs[:, : dim // 2].repeat(1, 2)[:, None, :], cs[:, dim // 2 :].repeat(1, 2)[:, None, :]
        for lo, count in ((0, heads), (heads, kv_heads)):
            t = qkv[:, lo * dim : (lo + count) * dim].view(tokens, count, dim)
            rot = torch.cat((-t[..., dim // 2 :], t[..., : dim // 2]), dim=-1)
            t.copy_((t.float() * cos + rot.float() * sin).to(bf16))

    emit("rope_neox", "bf16 q,k [16384, 32+8 heads, 128] in qkv", rope,
         bytes_=2.0 * tokens * (heads + kv_heads) * dim * 2 + tokens * dim * 4 + tokens * 8)
    del qkv

    # paged KV cache: write by slot mapping, gather by block table (index_copy_ / index_select)
    block_size, num_blocks, row = 16, 16384, kv_heads * dim
    kc = torch.randn(num_blocks * block_size, row, device=dev, dtype=bf16)
    vc = torch.randn_like(kc)
    w_tokens = 65536
    key = torch.randn(w_tokens, row, device=dev, dtype=bf16)
    value = torch.randn_like(key)
    slots = torch.randperm(num_blocks * block_size, device=dev)[:w_tokens]
    emit("kv_cache_write", "bf16 65536 tokens x [8, 128], shuffled slots",
         lambda: (kc.index_copy_(0, slots, key), vc.index_copy_(0, slots, value)), bytes_=4.0 * w_tokens * row * 2 + w_tokens * 8)
    seqs, length = 32, 8192
    blocks = torch.randperm(num_blocks, device=dev)[: seqs * length // block_size]
    rows_ = (blocks[:, None] * block_size + torch.arange(block_size, device=dev)[None, :]).reshape(-1)
    emit("kv_cache_gather", "bf16 32 x 8192 tokens x [8, 128]", lambda: (kc.index_select(0, rows_), vc.index_select(0, rows_)),
         bytes_=4.0 * seqs * length * row * 2)
    del key, value

    # MoE gating: softmax/sigmoid, torch.topk (and DeepSeek-V3's grouped selection)
    g_tokens = 65536
    for name, experts, k in (("moe_gating_deepseek_v3", 256, 8), ("moe_gating_mixtral", 8, 2), ("moe_gating_qwen", 64, 8)):
        logits = torch.randn(g_tokens, experts, device=dev, dtype=torch.float32)
        corr = torch.randn(experts, device=dev) * 0.1
        if name == "moe_gating_deepseek_v3":
            def gate():
                s = logits.sigmoid()
                sel = s + corr
                grp = sel.view(g_tokens, 8, 32).topk(2, dim=-1).values.sum(-1)
                keep = grp.topk(4, dim=-1).indices
                mask = torch.zeros_like(grp).scatter_(1, keep, 1.0).repeat_interleave(32, dim=1)
                idx = sel.masked_fill(mask == 0, float("-inf")).topk(8, dim=-1).indices
                wts = s.gather(1, idx)
                return wts / wts.sum(-1, keepdim=True) * 2.5, idx
        elif name == "moe_gating_mixtral":
            def gate():
                v, i = logits.topk(k, dim=-1)
                return v.softmax(-1), i
        else:
            def gate():
                return logits.softmax(-1).topk(k, dim=-1)
        emit(name, f"f32 [65536, {experts}] k {k}", gate, bytes_=g_tokens * experts * 4 + g_tokens * k * 8)

    # MoE routing plan, permute, combine (Mixtral 2 of 8, hidden 4096)
    r_tokens, k, experts, hid = 16384, 2, 8, 4096
    ids = torch.randint(0, experts, (r_tokens, k), device=dev, dtype=torch.int32)
    hs = torch.randn(r_tokens, hid, device=dev, dtype=bf16)
    wts = torch.rand(r_tokens, k, device=dev)

    def plan():
        flat = ids.view(-1)
        order = torch.sort(flat, stable=True).indices
        counts = torch.bincount(flat, minlength=experts)
        return order, counts, torch.cumsum(counts, 0)

    emit("moe_routing", "Mixtral 16384 tokens, 2 of 8", plan, bytes_=r_tokens * k * 4 * 3)
    order = plan()[0]
    emit("moe_permute", "bf16 16384 x 4096, 2 of 8", lambda: hs.index_select(0, order // k), bytes_=2.0 * r_tokens * k * hid * 2)
    expert_rows = hs.index_select(0, order // k)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=dev)
    emit("moe_combine", "bf16 16384 x 4096, 2 of 8",
         lambda: (expert_rows.index_select(0, inverse).view(r_tokens, k, hid).float() * wts[..., None]).sum(1).to(bf16),
         bytes_=r_tokens * k * hid * 2 + r_tokens * hid * 2)
    del hs, expert_rows, kc, vc

    # attention: SDPA (flash backend) prefill, and decode over contiguous K/V (torch has no paged form)
    seq = 8192
    q = torch.randn(1, heads, seq, dim, device=dev, dtype=bf16)
    kk = torch.randn(1, kv_heads, seq, dim, device=dev, dtype=bf16)
    vv = torch.randn_like(kk)
    for causal in (True, False):
        flops = 4.0 * seq * seq * dim * heads / (2.0 if causal else 1.0)
        emit("attention_prefill_causal" if causal else "attention_prefill", "bf16 8192 tokens, 32/8 heads, d 128",
             lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=causal, enable_gqa=True), flops=flops)
    del q, kk, vv
    batch, context = 64, 8192
    q = torch.randn(batch, heads, 1, dim, device=dev, dtype=bf16)
    kk = torch.randn(batch, kv_heads, context, dim, device=dev, dtype=bf16)
    vv = torch.randn_like(kk)
    emit("attention_decode_paged", "bf16 batch 64, context 8192, 32/8 heads",
         lambda: F.scaled_dot_product_attention(q, kk, vv, enable_gqa=True), bytes_=2.0 * batch * context * row * 2)
    out.close()


if __name__ == "__main__":
    main()
