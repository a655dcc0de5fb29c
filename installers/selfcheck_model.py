"""Makes the tiny ONNX model that ``--selfcheck`` runs (app/fleet/agent/selfcheck.onnx).

    .venv/bin/python -m installers.selfcheck_model          # rewrite the model file
    .venv/bin/python -m installers.selfcheck_model --check  # exit 1 if it is not current

A device has no ``onnx`` package, so the model ships as a file; it is made here from fixed
weights (a 3x3 convolution, ReLU, global average pooling, a dense layer and softmax: the
shape of a real classifier, 1 KB in all) so the same source always gives the same bytes. Its
output on the self-check's fixed input is computed with ONNX's own reference evaluator, a
third implementation beside the two runtimes the self-check compares against it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from app.fleet.agent.selfcheck import EXPECTED_PROBS, MODEL, MODEL_INPUT_SHAPE, model_input

OPSET = 17
IR_VERSION = 8  # old enough for every runtime version a device may have
SEED = 10


def build_model() -> onnx.ModelProto:
    """The self-check classifier with its fixed weights."""
    rng = np.random.default_rng(SEED)
    conv_w = np.round(rng.standard_normal((4, 3, 3, 3)) * 0.5, 3).astype(np.float32)
    conv_b = np.round(rng.standard_normal(4) * 0.1, 3).astype(np.float32)
    dense_w = np.round(rng.standard_normal((4, 3)), 3).astype(np.float32)
    dense_b = np.round(rng.standard_normal(3) * 0.1, 3).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "edgeloop-selfcheck",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(MODEL_INPUT_SHAPE))],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(a, name) for a, name in (
            (conv_w, "conv_w"), (conv_b, "conv_b"), (dense_w, "dense_w"), (dense_b, "dense_b"))],
    )
    model = helper.make_model(graph, producer_name="edgeloop installers/selfcheck_model.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def reference_output(model: onnx.ModelProto) -> list[float]:
    """The model's output on the self-check input, by ONNX's reference evaluator."""
    [probs] = ReferenceEvaluator(model).run(None, {"input": model_input()})
    return [round(float(p), 6) for p in probs.reshape(-1)]


def problems() -> list[str]:
    """Why the shipped model or its expected output is not what this script makes (none: current)."""
    model = build_model()
    found = []
    if not MODEL.is_file() or MODEL.read_bytes() != model.SerializeToString():
        found.append(f"{MODEL} differs from what installers/selfcheck_model.py makes; run it")
    expected = reference_output(model)
    if list(EXPECTED_PROBS) != expected:
        found.append(f"EXPECTED_PROBS in app/fleet/agent/selfcheck.py should be "
                     f"{tuple(expected)}, not {EXPECTED_PROBS}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m installers.selfcheck_model",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    if not args.check:
        model = build_model()
        MODEL.write_bytes(model.SerializeToString())
        print(f"wrote {MODEL} ({MODEL.stat().st_size} bytes); expected output "
              f"{tuple(reference_output(model))}")
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
