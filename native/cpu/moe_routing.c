/* lk_moe_routing: the routing plan for grouped expert GEMMs, from lk_moe_gating's expert ids.
 * The contract is the header's and docs/moe.md's.
 *
 * A counting sort over the slots (token t's j-th choice is slot t * top_k + j): count per local
 * expert, exclusive offsets of the (padded) counts, then one pass in ascending slot order placing
 * each slot at its expert's next row, which makes the order stable. The ids are checked in a pass
 * of their own first, so a bad id fails the call before any output is written.
 *
 * One thread: the plan of 8192 tokens x 8 slots is a few hundred KB of int32 touched twice (tens
 * of microseconds), well below what the permute and the GEMMs it feeds move. */
#include "lk_internal.h"
#include "moe_check.h"

#include <string.h>

LK_API lk_status lk_moe_routing_check(lk_moe_routing_params *p, int32_t read_indices) {
  if (p->num_tokens < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld is negative", (long long)p->num_tokens);
  if (p->top_k < 1) return lk_fail(LK_ERR_INVALID_ARGUMENT, "top_k: %lld must be positive", (long long)p->top_k);
  if (p->num_experts < 1 || p->num_experts > INT32_MAX)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_experts: %lld is outside [1, 2^31 - 1]", (long long)p->num_experts);
  const int64_t begin = p->expert_begin;
  int64_t end = p->expert_end;
  if (begin == 0 && end == 0) end = p->num_experts;
  if (begin < 0 || begin >= p->num_experts)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_begin: %lld is outside [0, num_experts (%lld))", (long long)begin,
                   (long long)p->num_experts);
  if (end <= begin || end > p->num_experts)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_end: %lld is outside (expert_begin (%lld), num_experts (%lld)]", (long long)end,
                   (long long)begin, (long long)p->num_experts);
  const int64_t local = end - begin;
  if (p->block_size < 0) return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_size: %lld is negative", (long long)p->block_size);
  const int64_t block = p->block_size > 1 ? p->block_size : 1;
  if (p->num_tokens > INT32_MAX / p->top_k)
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "num_tokens: %lld x top_k (%lld) slots do not fit int32", (long long)p->num_tokens,
                   (long long)p->top_k);
  const int64_t slots = p->num_tokens * p->top_k;
  if (block > INT32_MAX || (block > 1 && local > (INT32_MAX - slots) / (block - 1)))
    return lk_fail(LK_ERR_INVALID_ARGUMENT, "block_size: %lld padding of %lld experts makes the plan exceed int32",
                   (long long)p->block_size, (long long)local);
  const int64_t worst = slots + local * (block - 1);
  if (p->sorted_capacity < worst)
    return lk_fail(LK_ERR_INVALID_ARGUMENT,
                   "sorted_capacity: %lld is less than num_tokens x top_k + local experts x (block_size - 1) = %lld",
                   (long long)p->sorted_capacity, (long long)worst);
  if (!p->expert_counts) return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_counts: NULL");
  if (!p->expert_offsets) return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_offsets: NULL");
  if (slots > 0 || worst > 0) {
    if (!p->sorted_slots) return lk_fail(LK_ERR_INVALID_ARGUMENT, "sorted_slots: NULL");
  }
  if (slots > 0 && !p->expert_ids) return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_ids: NULL");

  /* What the call reads and writes must stay apart (byte ranges of int32 arrays). */
  lk_span spans[6];
  const char *names[6];
  int n = 0;
#define LK_SPAN(ptr, count, name)                                                                                              \
  if ((ptr) && (count) > 0) {                                                                                                  \
    spans[n] = lk_rows_span((ptr), 1, (count), (count), LK_DTYPE_F32);                                                         \
    names[n++] = (name);                                                                                                       \
  }
  LK_SPAN(p->expert_ids, slots, "expert_ids")
  LK_SPAN(p->expert_counts, local, "expert_counts")
  LK_SPAN(p->expert_offsets, local + 1, "expert_offsets")
  LK_SPAN(p->sorted_slots, worst, "sorted_slots")
  LK_SPAN(p->slot_rows, slots, "slot_rows")
  LK_SPAN(p->block_experts, block > 1 ? worst / block : 0, "block_experts")
#undef LK_SPAN
  for (int i = 1; i < n; i++)
    for (int j = 0; j < i; j++)
      if (lk_spans_overlap(spans[i], spans[j])) return lk_fail(LK_ERR_INVALID_ARGUMENT, "%s: overlaps %s", names[i], names[j]);

  p->expert_end = end;
  p->block_size = block;
  if (!read_indices) return LK_OK;
  for (int64_t s = 0; s < slots; s++) {
    const int32_t id = p->expert_ids[s];
    if (id < 0 || id >= p->num_experts)
      return lk_fail(LK_ERR_INVALID_ARGUMENT, "expert_ids: element %lld (token %lld, slot %lld) is %d, outside [0, num_experts (%lld))",
                     (long long)s, (long long)(s / p->top_k), (long long)(s % p->top_k), (int)id, (long long)p->num_experts);
  }
  return LK_OK;
}

static void plan(const lk_moe_routing_params *p, int64_t begin, int64_t local, int64_t block) {
  const int64_t slots = p->num_tokens * p->top_k;
  int32_t *counts = p->expert_counts, *offsets = p->expert_offsets;
  memset(counts, 0, (size_t)local * sizeof *counts);
  for (int64_t s = 0; s < slots; s++) {
    const int64_t e = (int64_t)p->expert_ids[s] - begin;
    if ((uint64_t)e < (uint64_t)local) counts[e]++;
  }
  int64_t row = 0;
  for (int64_t e = 0; e < local; e++) {
    offsets[e] = (int32_t)row;
    row += (counts[e] + block - 1) / block * block;
  }
  offsets[local] = (int32_t)row;

  /* Padding first (each segment's tail), then every slot at its expert's next row: the
   * expert's own counter, kept in the counts array and restored after. */
  for (int64_t e = 0; e < local; e++)
    for (int64_t r = offsets[e] + counts[e]; r < offsets[e + 1]; r++) p->sorted_slots[r] = -1;
  for (int64_t e = 0; e < local; e++) counts[e] = offsets[e];
  for (int64_t s = 0; s < slots; s++) {
    const int64_t e = (int64_t)p->expert_ids[s] - begin;
    int32_t r = -1;
    if ((uint64_t)e < (uint64_t)local) p->sorted_slots[r = counts[e]++] = (int32_t)s;
    if (p->slot_rows) p->slot_rows[s] = r;
  }
  for (int64_t e = 0; e < local; e++) counts[e] -= offsets[e];

  if (p->block_experts && block > 1)
    for (int64_t e = 0; e < local; e++)
      for (int64_t b = offsets[e] / block; b < offsets[e + 1] / block; b++) p->block_experts[b] = (int32_t)(begin + e);
}

LK_API lk_status lk_moe_routing(lk_cpu_context *context, const lk_moe_routing_params *params) {
  lk_status status = lk_context_enter(context);
  if (status != LK_OK) return status;
  lk_moe_routing_params p;
  if (!params) {
    status = lk_fail(LK_ERR_INVALID_ARGUMENT, "params: NULL");
  } else {
    p = *params;
    status = lk_moe_routing_check(&p, 1);
    if (status == LK_OK) plan(&p, p.expert_begin, p.expert_end - p.expert_begin, p.block_size);
  }
  lk_context_leave(context);
  return status;
}
