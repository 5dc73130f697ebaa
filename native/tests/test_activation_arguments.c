/* The contract of lk_apply_activation and lk_glu: every invalid argument is refused with
 * LK_ERR_INVALID_ARGUMENT and a message naming it, before any memory is touched; zero sizes are
 * no-ops that accept NULL pointers; the in-place forms are accepted and every other overlap is not. */
#include <stdint.h>
#include <string.h>

#include "test_harness.h"

static float buffer[4096];

static lk_glu_params glu(lk_glu_layout layout) {
  lk_glu_params p;
  memset(&p, 0, sizeof p);
  p.x = buffer;
  p.up = layout == LK_GLU_SPLIT ? buffer + 1024 : NULL;
  p.out = buffer + 2048;
  p.tokens = 4;
  p.d = 64;
  p.activation = LK_ACTIVATION_SILU;
  p.layout = layout;
  p.dtype = LK_DTYPE_F32;
  return p;
}

int main(void) {
  lk_cpu_context *c;
  if (!CHECK_STATUS(lk_cpu_context_create(NULL, &c), LK_OK)) return 1;

  /* lk_apply_activation */
  lk_activation_params a = {buffer, buffer + 2048, 1000, LK_ACTIVATION_GELU_ERF, LK_DTYPE_F32};
  CHECK_STATUS(lk_apply_activation(c, &a), LK_OK);
  CHECK_INVALID(lk_apply_activation(c, NULL), "params");
  lk_activation_params b = a;
  b.activation = (lk_activation)8;
  CHECK_INVALID(lk_apply_activation(c, &b), "activation");
  b = a;
  b.activation = (lk_activation)-1;
  CHECK_INVALID(lk_apply_activation(c, &b), "activation");
  b = a;
  b.dtype = (lk_dtype)7;
  CHECK_INVALID(lk_apply_activation(c, &b), "dtype");
  b = a;
  b.n = -1;
  CHECK_INVALID(lk_apply_activation(c, &b), "n");
  b = a;
  b.x = NULL;
  CHECK_INVALID(lk_apply_activation(c, &b), "x");
  b = a;
  b.y = NULL;
  CHECK_INVALID(lk_apply_activation(c, &b), "y");
  b = a;
  b.y = buffer + 10;
  CHECK_INVALID(lk_apply_activation(c, &b), "y");
  b = a;
  b.y = buffer; /* in place */
  CHECK_STATUS(lk_apply_activation(c, &b), LK_OK);
  b = a;
  b.n = INT64_MAX / 2;
  CHECK_INVALID(lk_apply_activation(c, &b), "n");
  b = a;
  b.n = 0;
  b.x = b.y = NULL;
  CHECK_STATUS(lk_apply_activation(c, &b), LK_OK);

  /* lk_glu */
  const lk_glu_layout layouts[] = {LK_GLU_GATE_FIRST, LK_GLU_UP_FIRST, LK_GLU_SPLIT};
  for (int l = 0; l < 3; l++) {
    const bool split = layouts[l] == LK_GLU_SPLIT;
    check_context_push("layout %d", (int)layouts[l]);
    lk_glu_params p = glu(layouts[l]), q;
    CHECK_STATUS(lk_glu(c, &p), LK_OK);
    q = p; q.activation = (lk_activation)99; CHECK_INVALID(lk_glu(c, &q), "activation");
    q = p; q.dtype = (lk_dtype)-2; CHECK_INVALID(lk_glu(c, &q), "dtype");
    q = p; q.layout = (lk_glu_layout)3; CHECK_INVALID(lk_glu(c, &q), "layout");
    q = p; q.tokens = -1; CHECK_INVALID(lk_glu(c, &q), "tokens");
    q = p; q.d = 0; CHECK_INVALID(lk_glu(c, &q), "d");
    q = p; q.d = -5; CHECK_INVALID(lk_glu(c, &q), "d");
    q = p; q.x = NULL; CHECK_INVALID(lk_glu(c, &q), "x");
    q = p; q.out = NULL; CHECK_INVALID(lk_glu(c, &q), "out");
    q = p; q.x_stride = split ? 63 : 127; CHECK_INVALID(lk_glu(c, &q), "x_stride");
    q = p; q.out_stride = 63; CHECK_INVALID(lk_glu(c, &q), "out_stride");
    q = p; q.x_stride = INT64_MAX / 2; CHECK_INVALID(lk_glu(c, &q), "x_stride");
    q = p; q.out_stride = INT64_MAX / 3; CHECK_INVALID(lk_glu(c, &q), "out_stride");
    q = p; q.out = buffer + 8; CHECK_INVALID(lk_glu(c, &q), "out");
    /* in place: out == x with x's stride */
    q = p; q.out = buffer; q.out_stride = split ? 64 : 128; CHECK_STATUS(lk_glu(c, &q), LK_OK);
    q = p; q.out = buffer; CHECK_STATUS(lk_glu(c, &q), split ? LK_OK : LK_ERR_INVALID_ARGUMENT); /* default strides differ when packed */
    q = p; q.tokens = 0; q.x = q.up = NULL; q.out = NULL; CHECK_STATUS(lk_glu(c, &q), LK_OK);
    if (split) {
      q = p; q.up = NULL; CHECK_INVALID(lk_glu(c, &q), "up");
      q = p; q.up_stride = 10; CHECK_INVALID(lk_glu(c, &q), "up_stride");
      q = p; q.up_stride = INT64_MAX / 2; CHECK_INVALID(lk_glu(c, &q), "up_stride");
      q = p; q.up = buffer + 32; CHECK_INVALID(lk_glu(c, &q), "up");
      q = p; q.up = buffer + 2048 + 8; CHECK_INVALID(lk_glu(c, &q), "out|up");
    } else {
      q = p; q.up = buffer + 1024; CHECK_INVALID(lk_glu(c, &q), "up");
      q = p; q.up_stride = 64; CHECK_INVALID(lk_glu(c, &q), "up_stride");
      q = p; q.d = INT64_MAX / 2 + 1; CHECK_INVALID(lk_glu(c, &q), "d");
    }
    check_context_pop();
  }
  CHECK_INVALID(lk_glu(c, NULL), "params");
  lk_cpu_context_destroy(c);
  return check_summary("activation_arguments");
}
