"""Build the text-model ONNX graph (an embedding-bag style linear layer over hashed n-gram features).

Inputs (all dynamic):
  indices  int64   [N]     unique bucket ids of all texts of the batch, concatenated
  tf       float32 [N]     sublinear term frequency (1 + ln count) of each id
  segment  int64   [N]     b * K + k for a feature of text b in block k (K = len(alpha) blocks: word
                           uni-grams, word bi-grams, char n-grams[, cue-context words])
  n_texts  int64   [1]     B, the number of texts in the batch
Output:
  logits   float32 [B, C]  = sum_k alpha_k * (sum_{i in (b, k)} w_i W[indices_i]) / ||w||_(b,k) + bias,
                           w = tf * idf[indices]   (TF-IDF, L2-normalised per text and block)
Segment sums are ScatterElements(reduction='add'), so cost is linear in N for any batch size.

precision 'fp32': W float32 [buckets, C], idf float32 [buckets].
precision 'int8': W int8 with a per-class (column) scale, idf uint8 with a scalar scale/offset;
DequantizeLinear runs after the Gather, so only the gathered rows are dequantized.
Calibration (temperature) is applied by emoedge.text from the manifest, not in the graph.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def quantize_weights(W: np.ndarray):
    """Symmetric per-column int8: returns (q int8 [buckets, C], scale float32 [C])."""
    amax = np.abs(W).max(0)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(W / scale[None, :]), -127, 127).astype(np.int8)
    return q, scale


def quantize_idf(idf: np.ndarray):
    """uint8 over [min, max]: returns (q uint8, scale, lo) with idf ~ q * scale + lo."""
    lo, hi = float(idf.min()), float(idf.max())
    scale = max(hi - lo, 1e-6) / 255.0
    # idf >= 1 > 0, so a uint8 zero point cannot express the offset; the graph adds lo after dequantizing.
    q = np.clip(np.round((idf - lo) / scale), 0, 255).astype(np.uint8)
    return q, np.float32(scale), np.float32(lo)


def dequantized(W: np.ndarray, idf: np.ndarray):
    """The float weights an int8 graph effectively uses (for measuring the quantization effect)."""
    q, s = quantize_weights(W)
    qi, si, lo = quantize_idf(idf)
    return q.astype(np.float32) * s[None, :], qi.astype(np.float32) * si + lo


def build(W: np.ndarray, b: np.ndarray, idf: np.ndarray, alpha, precision: str = "int8", doc: str = "") -> onnx.ModelProto:
    W = np.asarray(W, np.float32)
    b = np.asarray(b, np.float32)
    idf = np.asarray(idf, np.float32)
    nb, C = W.shape
    inits, nodes = [], []
    if precision == "fp32":
        inits += [numpy_helper.from_array(W, "W"), numpy_helper.from_array(idf, "idf")]
        nodes += [helper.make_node("Gather", ["W", "indices"], ["rows"], axis=0),
                  helper.make_node("Gather", ["idf", "indices"], ["idf_g"], axis=0)]
    elif precision == "int8":
        q, s = quantize_weights(W)
        qi, si, lo = quantize_idf(idf)
        inits += [numpy_helper.from_array(q, "W_q"), numpy_helper.from_array(s, "W_scale"),
                  numpy_helper.from_array(np.zeros(C, np.int8), "W_zp"),
                  numpy_helper.from_array(qi, "idf_q"), numpy_helper.from_array(np.array(si, np.float32), "idf_scale"),
                  numpy_helper.from_array(np.array(0, np.uint8), "idf_zp"),
                  numpy_helper.from_array(np.array(lo, np.float32), "idf_lo")]
        nodes += [helper.make_node("Gather", ["W_q", "indices"], ["rows_q"], axis=0),
                  helper.make_node("DequantizeLinear", ["rows_q", "W_scale", "W_zp"], ["rows"], axis=1),
                  helper.make_node("Gather", ["idf_q", "indices"], ["idf_gq"], axis=0),
                  helper.make_node("DequantizeLinear", ["idf_gq", "idf_scale", "idf_zp"], ["idf_g0"]),
                  helper.make_node("Add", ["idf_g0", "idf_lo"], ["idf_g"])]
    else:
        raise ValueError(f"precision {precision!r}: choose fp32 or int8")
    alpha = np.asarray(alpha, np.float32).reshape(-1, 1)  # [K, 1]
    K = alpha.shape[0]
    inits += [numpy_helper.from_array(alpha, "alpha"), numpy_helper.from_array(b, "bias"),
              numpy_helper.from_array(np.array([1], np.int64), "ax1"),
              numpy_helper.from_array(np.array([K], np.int64), "K"),
              numpy_helper.from_array(np.array([1], np.int64), "one"),
              numpy_helper.from_array(np.array([C], np.int64), "C"),
              numpy_helper.from_array(np.array([-1, K, C], np.int64), "shape_bkc"),
              numpy_helper.from_array(np.array(1e-12, np.float32), "eps")]
    nodes += [
        helper.make_node("Mul", ["tf", "idf_g"], ["w"]),
        helper.make_node("Unsqueeze", ["w", "ax1"], ["w_col"]),            # [N, 1]
        helper.make_node("Mul", ["w_col", "w_col"], ["w2"]),
        helper.make_node("Mul", ["n_texts", "K"], ["S"]),                # [1] = B * K
        helper.make_node("Concat", ["S", "one"], ["shape_s1"], axis=0),
        helper.make_node("Concat", ["S", "C"], ["shape_sc"], axis=0),
        helper.make_node("ConstantOfShape", ["shape_s1"], ["zeros_s1"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("ConstantOfShape", ["shape_sc"], ["zeros_sc"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("Unsqueeze", ["segment", "ax1"], ["seg_col"]),     # [N, 1]
        helper.make_node("ScatterElements", ["zeros_s1", "seg_col", "w2"], ["ss"], axis=0, reduction="add"),  # [S, 1]
        helper.make_node("Max", ["ss", "eps"], ["ss_c"]),
        helper.make_node("Sqrt", ["ss_c"], ["norm"]),
        helper.make_node("Mul", ["rows", "w_col"], ["rows_w"]),            # [N, C]
        helper.make_node("Shape", ["rows_w"], ["shape_nc"]),
        helper.make_node("Expand", ["seg_col", "shape_nc"], ["seg_nc"]),   # [N, C]
        helper.make_node("ScatterElements", ["zeros_sc", "seg_nc", "rows_w"], ["h"], axis=0, reduction="add"),  # [S, C]
        helper.make_node("Div", ["h", "norm"], ["h_n"]),
        helper.make_node("Reshape", ["h_n", "shape_bkc"], ["h_bkc"]),      # [B, K, C]
        helper.make_node("Mul", ["h_bkc", "alpha"], ["h_a"]),
        helper.make_node("ReduceSum", ["h_a", "ax1"], ["h_s"], keepdims=0),  # [B, C]
        helper.make_node("Add", ["h_s", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "emoedge_text_linear",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("tf", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("segment", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("n_texts", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", C])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="emoedge-export", doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_mixture(W: np.ndarray, b: np.ndarray, idf: np.ndarray, alpha, *, experts, gate_col: int, out_labels,
                  known: np.ndarray = None, precision: str = "int8", floor: float = 1e-6, doc: str = "",
                  expert1_scores: str = "") -> onnx.ModelProto:
    """Domain-gated mixture of linear experts over the same features (one shared linear layer).

    ``W`` [buckets, C] / ``b`` [C] hold every expert's columns and one gate column ``gate_col``. ``experts``:
    two dicts ``{"cols": [...], "T": temperature, "map": float [len(cols), len(out_labels)] 0/1}``; expert 0
    is weighted by g = sigmoid(raw[:, gate_col]) and expert 1 by 1 - g. Output ``logits`` [B, L] is
    log(g * softmax(raw_0 / T_0) @ map_0 + (1 - g) * softmax(raw_1 / T_1) @ map_1 + floor), renormalised
    (log-probabilities: softmax(logits) is the model's distribution over ``out_labels``). With ``known``
    (uint8 [buckets], 1 = a word uni-gram bucket seen in training) a second output ``coverage`` [B] is the
    tf-weighted fraction of the text's word uni-grams that were seen in training (1 when it has none).
    With ``expert1_scores`` (an output name), expert 1's raw scores [B, len(cols)] are an output too.
    """
    model = build(W, b, idf, alpha, precision=precision, doc=doc)
    g = model.graph
    for n in g.node:
        if "logits" in n.output:
            n.output[list(n.output).index("logits")] = "raw"
    del g.output[:]
    L = len(out_labels)
    e0, e1 = experts
    inits = [numpy_helper.from_array(np.asarray(e0["cols"], np.int64), "cols0"),
             numpy_helper.from_array(np.asarray(e1["cols"], np.int64), "cols1"),
             numpy_helper.from_array(np.asarray([gate_col], np.int64), "colg"),
             numpy_helper.from_array(np.array(1.0 / e0["T"], np.float32), "invT0"),
             numpy_helper.from_array(np.array(1.0 / e1["T"], np.float32), "invT1"),
             numpy_helper.from_array(np.asarray(e0["map"], np.float32), "map0"),
             numpy_helper.from_array(np.asarray(e1["map"], np.float32), "map1"),
             numpy_helper.from_array(np.array(1.0, np.float32), "onef"),
             numpy_helper.from_array(np.array(floor, np.float32), "floor"),
             numpy_helper.from_array(np.array([1], np.int64), "ax1m")]
    nodes = [
        helper.make_node("Gather", ["raw", "cols0"], ["z0"], axis=1),
        helper.make_node("Gather", ["raw", "cols1"], ["z1"], axis=1),
        helper.make_node("Gather", ["raw", "colg"], ["zg"], axis=1),          # [B, 1]
        helper.make_node("Mul", ["z0", "invT0"], ["z0t"]),
        helper.make_node("Mul", ["z1", "invT1"], ["z1t"]),
        helper.make_node("Softmax", ["z0t"], ["p0"], axis=1),
        helper.make_node("Softmax", ["z1t"], ["p1"], axis=1),
        helper.make_node("MatMul", ["p0", "map0"], ["q0"]),
        helper.make_node("MatMul", ["p1", "map1"], ["q1"]),
        helper.make_node("Sigmoid", ["zg"], ["gw"]),
        helper.make_node("Sub", ["onef", "gw"], ["gw1"]),
        helper.make_node("Mul", ["q0", "gw"], ["m0"]),
        helper.make_node("Mul", ["q1", "gw1"], ["m1"]),
        helper.make_node("Add", ["m0", "m1"], ["mix"]),
        helper.make_node("Add", ["mix", "floor"], ["mixf"]),
        helper.make_node("ReduceSum", ["mixf", "ax1m"], ["msum"], keepdims=1),
        helper.make_node("Div", ["mixf", "msum"], ["pm"]),
        helper.make_node("Log", ["pm"], ["logits"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", L])]
    if expert1_scores:  # the second expert's raw per-class scores (multi-label thresholds apply to them)
        nodes.append(helper.make_node("Identity", ["z1"], [expert1_scores]))
        outputs.append(helper.make_tensor_value_info(expert1_scores, TensorProto.FLOAT, ["B", len(e1["cols"])]))
    if known is not None:
        inits += [numpy_helper.from_array(np.asarray(known, np.uint8), "known"),
                  numpy_helper.from_array(np.array(len(alpha), np.int64), "Kblk"),
                  numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
                  numpy_helper.from_array(np.array(1e-6, np.float32), "tiny")]
        nodes += [
            helper.make_node("Gather", ["known", "indices"], ["kn_u8"], axis=0),
            helper.make_node("Cast", ["kn_u8"], ["kn"], to=TensorProto.FLOAT),
            helper.make_node("Mod", ["segment", "Kblk"], ["blk"]),
            helper.make_node("Equal", ["blk", "zero_i"], ["is_uni_b"]),
            helper.make_node("Cast", ["is_uni_b"], ["is_uni"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["is_uni", "tf"], ["uni_tf"]),
            helper.make_node("Mul", ["uni_tf", "kn"], ["kn_tf"]),
            helper.make_node("Div", ["segment", "Kblk"], ["text_id"]),
            helper.make_node("ConstantOfShape", ["n_texts"], ["zeros_b"],
                             value=numpy_helper.from_array(np.zeros(1, np.float32))),
            helper.make_node("ScatterElements", ["zeros_b", "text_id", "kn_tf"], ["num"], axis=0, reduction="add"),
            helper.make_node("ScatterElements", ["zeros_b", "text_id", "uni_tf"], ["den"], axis=0, reduction="add"),
            helper.make_node("Sub", ["den", "num"], ["unk"]),
            helper.make_node("Max", ["den", "tiny"], ["den_c"]),
            helper.make_node("Div", ["unk", "den_c"], ["unk_frac"]),
            helper.make_node("Sub", ["onef", "unk_frac"], ["coverage"]),
        ]
        outputs.append(helper.make_tensor_value_info("coverage", TensorProto.FLOAT, ["B"]))
    g.initializer.extend(inits)
    g.node.extend(nodes)
    g.output.extend(outputs)
    onnx.checker.check_model(model)
    return model
