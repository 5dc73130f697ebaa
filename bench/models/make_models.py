#!/usr/bin/env python3
"""Writes the one-node ONNX models the ONNX Runtime peer runs (bench/LlmKernels.Peers/OrtRmsNormPeer.cs).

    python3 bench/models/make_models.py        # rewrites bench/models/*.onnx

The protobuf is written by hand (a dozen lines of wire format below) so that the models can be
regenerated with nothing but the Python standard library. Every dimension is symbolic ("rows",
"hidden"), so one file serves every benchmark shape.

  rms_norm_{f32,f16,bf16}.onnx
      SimplifiedLayerNormalization (ONNX Runtime's RMSNorm: a contrib schema registered in the
      default ONNX domain): y = x / sqrt(mean(x^2) + eps) * scale, over the last axis.
  fused_add_rms_norm_{f32,f16,bf16}.onnx
      SkipSimplifiedLayerNormalization (com.microsoft): residual_out = x + residual,
      y = rms_norm(residual_out) * scale. Its fourth output (input_skip_bias_sum) is the updated
      residual; the two optional statistics outputs in between are left unnamed.

ONNX Runtime 1.31.1's CPU execution provider runs both ops natively in f32, f16 and bf16 (the
session keeps the single node on CPUExecutionProvider and inserts no Cast); x, weight and y share
one element type.
"""
import os
import struct

EPSILON = 1e-6  # the epsilon LlmKernels' benchmarks use
ELEM_TYPES = {"f32": 1, "f16": 10, "bf16": 16}  # TensorProto.DataType: FLOAT, FLOAT16, BFLOAT16
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
    shape = b"".join(field_bytes(1, field_bytes(2, d)) for d in dims)  # Dimension.dim_param
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


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for dtype, elem_type in ELEM_TYPES.items():
        for name, build in (("rms_norm", rms_norm), ("fused_add_rms_norm", fused_add_rms_norm)):
            path = os.path.join(here, f"{name}_{dtype}.onnx")
            with open(path, "wb") as f:
                f.write(build(elem_type))
            print(path)


if __name__ == "__main__":
    main()
