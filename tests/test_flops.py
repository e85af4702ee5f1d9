"""convert/flops.py against FLOPs counted by hand on a tiny graph, and on the exported graphs' structure."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from convert.flops import count_flops


def _tiny_graph(path):
    """MatMul, Conv, Gemm and ConvTranspose, plus a Reshape whose target shape is computed (Shape -> Concat)."""
    rng = np.random.default_rng(0)
    weights = {
        "w_matmul": rng.standard_normal((4, 5)), "w_conv": rng.standard_normal((4, 3, 3, 3)),
        "w_gemm": rng.standard_normal((6, 7)), "w_deconv": rng.standard_normal((2, 3, 2, 2)),
        "minus_one": np.array([-1]),
    }
    inits = [numpy_helper.from_array(v.astype(np.int64 if k == "minus_one" else np.float32), k)
             for k, v in weights.items()]
    nodes = [
        helper.make_node("MatMul", ["tokens", "w_matmul"], ["matmul_out"], name="matmul"),
        helper.make_node("Conv", ["image", "w_conv"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Gemm", ["rows", "w_gemm"], ["gemm_out"], name="gemm"),
        helper.make_node("ConvTranspose", ["small", "w_deconv"], ["deconv_out"], name="deconv", strides=[2, 2]),
        # (points, 3, 4) -> (points * 3, 4) through a computed shape, then a MatMul on it.
        helper.make_node("Shape", ["tokens"], ["tokens_shape"], start=-1),
        helper.make_node("Concat", ["minus_one", "tokens_shape"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["tokens", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_matmul"], ["flat_out"], name="flat_matmul"),
    ]
    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["num_points", 3, 4]),
        helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8]),
        helper.make_tensor_value_info("rows", TensorProto.FLOAT, [2, 6]),
        helper.make_tensor_value_info("small", TensorProto.FLOAT, [1, 2, 4, 4]),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
               for n in ("matmul_out", "conv_out", "gemm_out", "deconv_out", "flat_out")]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_counts_match_the_hand_count(tmp_path):
    path = tmp_path / "tiny.onnx"
    _tiny_graph(path)
    flops = count_flops(path, {"num_points": 2})
    # By hand, 2 FLOPs per multiply-accumulate:
    # MatMul (2, 3, 4) x (4, 5): 2*3*5 outputs, 4 each             -> 120 MACs
    # Reshaped (6, 4) x (4, 5): 6*5 outputs, 4 each                 -> 120 MACs
    # Conv 3 -> 4 channels, 3x3, 8x8 output: 4*64 outputs, 3*9 each -> 6912 MACs
    # Gemm (2, 6) x (6, 7): 14 outputs, 6 each                      -> 84 MACs
    # ConvTranspose 2 -> 3 channels, 2x2: 2*16 inputs, 3*4 each     -> 384 MACs
    assert flops.by_op == {"MatMul": 480, "Conv": 13824, "Gemm": 168, "ConvTranspose": 768}
    assert flops.total == 15240 and flops.unknown == []


def test_dims_change_the_count(tmp_path):
    path = tmp_path / "tiny.onnx"
    _tiny_graph(path)
    assert count_flops(path, {"num_points": 4}).by_op["MatMul"] == 960


def test_every_counted_node_of_an_edgetam_export_has_shapes(edgetam_export_256):
    """Shape inference leaves the mask decoder's attention reshapes unknown: the measured shapes fill them in."""
    flops = {name: count_flops(edgetam_export_256 / f"{name}.onnx")
             for name in ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")}
    assert all(graph.unknown == [] for graph in flops.values())
    assert set(flops["image_encoder"].by_op) == {"Conv"} and set(flops["memory_attention"].by_op) == {"MatMul"}
    assert set(flops["mask_decoder"].by_op) == {"MatMul", "Gemm", "ConvTranspose", "Conv"}  # Conv: the mask prompt
