#!/usr/bin/env python3
"""Writes the one-node ONNX models the ONNX Runtime peers run (bench/LlmKernels.Peers/Ort*Peer.cs).

    python3 bench/models/make_models.py        # rewrites bench/models/*.onnx

The protobuf is written by hand (a dozen lines of wire format below) so that the models can be
regenerated with nothing but the Python standard library. Every dimension is symbolic ("rows",
"hidden", ...), so one file serves every benchmark shape.

  rms_norm_{f32,f16,bf16}.onnx
      SimplifiedLayerNormalization (ONNX Runtime's RMSNorm: a contrib schema registered in the
      default ONNX domain): y = x / sqrt(mean(x^2) + eps) * scale, over the last axis.
  fused_add_rms_norm_{f32,f16,bf16}.onnx
      SkipSimplifiedLayerNormalization (com.microsoft): residual_out = x + residual,
      y = rms_norm(residual_out) * scale. Its fourth output (input_skip_bias_sum) is the updated
      residual; the two optional statistics outputs in between are left unnamed.

  layer_norm_{f32,f16,bf16}.onnx
      LayerNormalization (ONNX domain, opset 17): y = (x - mean) / sqrt(var + eps) * weight + bias,
      over the last axis, statistics in f32 (stash_type 1); the Mean and InvStdDev outputs unused.
  fused_add_layer_norm_{f32,f16,bf16}.onnx
      SkipLayerNormalization (com.microsoft): residual_out = x + residual (its fourth output,
      input_skip_bias_sum), y = layer_norm(residual_out) * weight + bias.
  rope_gptj_{f32,f16,bf16}.onnx
      The same with GPT-J pairing (interleaved 1): pairs (x[2i], x[2i + 1]).
  post_layer_norm_{f32,f16,bf16}.onnx
      SkipLayerNormalization (com.microsoft) with only its first output: y = layer_norm(x + residual)
      * weight + bias, the residual read only: post-norm with alpha 1 (lk_norm's POST form).
  rope_neox_{f32,f16,bf16}.onnx
      RotaryEmbedding (com.microsoft), NeoX pairing (interleaved 0): inputs x [batch, tokens,
      hidden] (q and k heads of a token side by side), position_ids [batch, tokens] int64,
      cos_cache and sin_cache [max_position, rot_dim / 2] in the element type of x. num_heads and
      rotary_embedding_dim are left 0: ONNX Runtime then takes head_size = 2 * cos_cache.shape[1]
      and num_heads = hidden / head_size, so one model serves any head count.
  attention_prefill_{f32,f16}.onnx
      GroupQueryAttention (com.microsoft) without past: query [batch, tokens, num_heads * head_dim],
      key and value [batch, tokens, kv_num_heads * head_dim], seqlens_k [batch] int32 (total - 1),
      total_sequence_length (an int32 scalar); outputs output and present_key / present_value
      [batch, kv_num_heads, tokens, head_dim] (BNSH). Always causal. num_heads 32, kv_num_heads 8,
      scale 1/sqrt(128), local_window_size -1 (no window), do_rotary 0, softcap 0: the attention
      family's geometry (bench/LlmKernels.Peers/AttentionCase.cs).
  attention_decode_{f32,f16}.onnx
      The same with past_key and past_value [batch, kv_num_heads, capacity, head_dim] (BNSH): the
      peer binds one buffer as both past_key and present_key (ONNX Runtime then appends the new
      token in place instead of copying the past), seqlens_k = context - 1.
      ONNX Runtime 1.31.1 registers GroupQueryAttention on the CPU for float and MLFloat16 only:
      there is no bf16 model.

ONNX Runtime 1.31.1's CPU execution provider runs the RMSNorm ops natively in f32, f16 and bf16 (the
session keeps the single node on CPUExecutionProvider and inserts no Cast); x, weight and y share
one element type. Where it has no CPU kernel for a type (bench/README.md lists which), the session
refuses the model and the peer reports itself unavailable with ONNX Runtime's message.
"""
import os
import struct

EPSILON = 1e-6  # the RMSNorm epsilon LlmKernels' benchmarks use
LAYER_NORM_EPSILON = 1e-5  # the LayerNorm epsilon (torch.nn.LayerNorm's default)
ELEM_TYPES = {"f32": 1, "f16": 10, "bf16": 16}  # TensorProto.DataType: FLOAT, FLOAT16, BFLOAT16
INT64 = 7
INT32 = 6
ATTENTION_HEADS = 32  # the attention family's geometry: Llama 3 8B
ATTENTION_KV_HEADS = 8
ATTENTION_HEAD_DIM = 128
IR_VERSION = 8  # ONNX 1.10+: every ONNX Runtime since 1.10 reads it
ONNX_OPSET = 17
MS_OPSET = 1


# ---- protobuf wire format: varints, length-delimited fields, fixed32 ------------------------

def varint(value):
    if value < 0:
        value += 1 << 64  # int64 fields encode negatives as ten-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def field_bytes(number, payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_float(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value)


# ---- the ONNX messages used (field numbers from onnx/onnx.proto) ------------------------------

def tensor_value_info(name, elem_type, dims):
    # Dimension.dim_value for a fixed size, dim_param for a symbolic one
    shape = b"".join(field_bytes(1, field_varint(1, d) if isinstance(d, int) else field_bytes(2, d)) for d in dims)
    tensor_type = field_varint(1, elem_type) + field_bytes(2, shape)  # TypeProto.Tensor
    return field_bytes(1, name) + field_bytes(2, field_bytes(1, tensor_type))  # ValueInfoProto


def attribute_float(name, value):
    return field_bytes(1, name) + field_float(2, value) + field_varint(20, 1)  # type FLOAT


def attribute_int(name, value):
    return field_bytes(1, name) + field_varint(3, value) + field_varint(20, 2)  # type INT


def node(op_type, domain, inputs, outputs, attributes):
    out = b"".join(field_bytes(1, i) for i in inputs)
    out += b"".join(field_bytes(2, o) for o in outputs)
    out += field_bytes(3, op_type) + field_bytes(4, op_type)
    out += b"".join(field_bytes(5, a) for a in attributes)
    return out + field_bytes(7, domain)


def model(graph_name, graph_node, inputs, outputs):
    graph = field_bytes(1, graph_node) + field_bytes(2, graph_name)
    graph += b"".join(field_bytes(11, i) for i in inputs)
    graph += b"".join(field_bytes(12, o) for o in outputs)
    opsets = field_bytes(8, field_bytes(1, "") + field_varint(2, ONNX_OPSET))
    opsets += field_bytes(8, field_bytes(1, "com.microsoft") + field_varint(2, MS_OPSET))
    return (field_varint(1, IR_VERSION) + field_bytes(2, "LlmKernels bench/models/make_models.py")
            + opsets + field_bytes(7, graph))


# ---- the models -------------------------------------------------------------------------------

def rms_norm(elem_type):
    inputs = [tensor_value_info("x", elem_type, ["rows", "hidden"]),
              tensor_value_info("weight", elem_type, ["hidden"])]
    outputs = [tensor_value_info("y", elem_type, ["rows", "hidden"])]
    # stash_type 1: statistics in f32 whatever the element type, as LlmKernels computes them.
    op = node("SimplifiedLayerNormalization", "", ["x", "weight"], ["y"],
              [attribute_int("axis", -1), attribute_float("epsilon", EPSILON), attribute_int("stash_type", 1)])
    return model("rms_norm", op, inputs, outputs)


def fused_add_rms_norm(elem_type):
    inputs = [tensor_value_info("x", elem_type, ["rows", "hidden"]),
              tensor_value_info("residual", elem_type, ["rows", "hidden"]),
              tensor_value_info("weight", elem_type, ["hidden"])]
    outputs = [tensor_value_info("y", elem_type, ["rows", "hidden"]),
               tensor_value_info("residual_out", elem_type, ["rows", "hidden"])]
    op = node("SkipSimplifiedLayerNormalization", "com.microsoft", ["x", "residual", "weight"],
              ["y", "", "", "residual_out"], [attribute_float("epsilon", EPSILON)])
    return model("fused_add_rms_norm", op, inputs, outputs)


def layer_norm(elem_type):
    inputs = [tensor_value_info("x", elem_type, ["rows", "hidden"]),
              tensor_value_info("weight", elem_type, ["hidden"]),
              tensor_value_info("bias", elem_type, ["hidden"])]
    outputs = [tensor_value_info("y", elem_type, ["rows", "hidden"])]
    op = node("LayerNormalization", "", ["x", "weight", "bias"], ["y"],
              [attribute_int("axis", -1), attribute_float("epsilon", LAYER_NORM_EPSILON), attribute_int("stash_type", 1)])
    return model("layer_norm", op, inputs, outputs)


def fused_add_layer_norm(elem_type):
    inputs = [tensor_value_info("x", elem_type, ["rows", "hidden"]),
              tensor_value_info("residual", elem_type, ["rows", "hidden"]),
              tensor_value_info("weight", elem_type, ["hidden"]),
              tensor_value_info("bias", elem_type, ["hidden"])]
    outputs = [tensor_value_info("y", elem_type, ["rows", "hidden"]),
               tensor_value_info("residual_out", elem_type, ["rows", "hidden"])]
    # Inputs: input, skip, gamma, beta (the optional fifth, a bias added before the skip, is absent).
    op = node("SkipLayerNormalization", "com.microsoft", ["x", "residual", "weight", "bias"],
              ["y", "", "", "residual_out"], [attribute_float("epsilon", LAYER_NORM_EPSILON)])
    return model("fused_add_layer_norm", op, inputs, outputs)


def post_layer_norm(elem_type):
    inputs = [tensor_value_info("x", elem_type, ["rows", "hidden"]),
              tensor_value_info("residual", elem_type, ["rows", "hidden"]),
              tensor_value_info("weight", elem_type, ["hidden"]),
              tensor_value_info("bias", elem_type, ["hidden"])]
    outputs = [tensor_value_info("y", elem_type, ["rows", "hidden"])]
    # The sum (input_skip_bias_sum) is not asked for: post-norm does not store it.
    op = node("SkipLayerNormalization", "com.microsoft", ["x", "residual", "weight", "bias"],
              ["y"], [attribute_float("epsilon", LAYER_NORM_EPSILON)])
    return model("post_layer_norm", op, inputs, outputs)


def rope_gptj(elem_type):
    return rope(elem_type, "rope_gptj", 1)


def rope_neox(elem_type):
    return rope(elem_type, "rope_neox", 0)


def rope(elem_type, name, interleaved):
    inputs = [tensor_value_info("x", elem_type, ["batch", "tokens", "hidden"]),
              tensor_value_info("position_ids", INT64, ["batch", "tokens"]),
              tensor_value_info("cos_cache", elem_type, ["max_position", "half_rot"]),
              tensor_value_info("sin_cache", elem_type, ["max_position", "half_rot"])]
    outputs = [tensor_value_info("y", elem_type, ["batch", "tokens", "hidden"])]
    op = node("RotaryEmbedding", "com.microsoft", ["x", "position_ids", "cos_cache", "sin_cache"], ["y"],
              [attribute_int("interleaved", interleaved)])
    return model(name, op, inputs, outputs)


def attention(elem_type, name, past):
    q_hidden = ATTENTION_HEADS * ATTENTION_HEAD_DIM
    kv_hidden = ATTENTION_KV_HEADS * ATTENTION_HEAD_DIM
    kv_heads, head_dim = ATTENTION_KV_HEADS, ATTENTION_HEAD_DIM
    inputs = [tensor_value_info("query", elem_type, ["batch", "tokens", q_hidden]),
              tensor_value_info("key", elem_type, ["batch", "tokens", kv_hidden]),
              tensor_value_info("value", elem_type, ["batch", "tokens", kv_hidden])]
    if past:
        inputs += [tensor_value_info("past_key", elem_type, ["batch", kv_heads, "capacity", head_dim]),
                   tensor_value_info("past_value", elem_type, ["batch", kv_heads, "capacity", head_dim])]
    inputs += [tensor_value_info("seqlens_k", INT32, ["batch"]),
               tensor_value_info("total_sequence_length", INT32, [])]
    present = "capacity" if past else "tokens"
    outputs = [tensor_value_info("output", elem_type, ["batch", "tokens", q_hidden]),
               tensor_value_info("present_key", elem_type, ["batch", kv_heads, present, head_dim]),
               tensor_value_info("present_value", elem_type, ["batch", kv_heads, present, head_dim])]
    names = ["query", "key", "value"] + (["past_key", "past_value"] if past else ["", ""])
    op = node("GroupQueryAttention", "com.microsoft", names + ["seqlens_k", "total_sequence_length"],
              ["output", "present_key", "present_value"],
              [attribute_int("num_heads", ATTENTION_HEADS), attribute_int("kv_num_heads", ATTENTION_KV_HEADS),
               attribute_float("scale", ATTENTION_HEAD_DIM ** -0.5), attribute_int("local_window_size", -1),
               attribute_int("do_rotary", 0), attribute_float("softcap", 0.0)])
    return model(name, op, inputs, outputs)


def attention_prefill(elem_type):
    return attention(elem_type, "attention_prefill", past=False)


def attention_decode(elem_type):
    return attention(elem_type, "attention_decode", past=True)


MODELS = (("rms_norm", rms_norm), ("fused_add_rms_norm", fused_add_rms_norm),
          ("layer_norm", layer_norm), ("fused_add_layer_norm", fused_add_layer_norm),
          ("post_layer_norm", post_layer_norm),
          ("rope_neox", rope_neox), ("rope_gptj", rope_gptj))

# GroupQueryAttention has CPU kernels for float and MLFloat16 only (ONNX Runtime 1.31.1).
ATTENTION_MODELS = (("attention_prefill", attention_prefill), ("attention_decode", attention_decode))
ATTENTION_ELEM_TYPES = ("f32", "f16")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for dtype, elem_type in ELEM_TYPES.items():
        models = MODELS + (ATTENTION_MODELS if dtype in ATTENTION_ELEM_TYPES else ())
        for name, build in models:
            path = os.path.join(here, f"{name}_{dtype}.onnx")
            with open(path, "wb") as f:
                f.write(build(elem_type))
            print(path)


if __name__ == "__main__":
    main()
