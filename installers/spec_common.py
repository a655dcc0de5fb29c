"""What both PyInstaller specs share: the repository root, the workstation-only packages an
agent must never carry, and the OpenVINO files each bundle needs.

PyInstaller has no hook for OpenVINO: its runtime finds the CPU plugin and the model readers
(frontends) as shared libraries next to libopenvino.so at run time, so the specs collect them
by name into openvino/libs, where the library looks.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# In neither bundle: test and build tools, notebooks, GUI toolkits we do not use, and
# frameworks that optional imports of torch, OpenVINO or ONNX would otherwise drag in.
NEVER_BUNDLED = [
    "tkinter", "_tkinter", "IPython", "jupyter", "notebook", "pytest", "_pytest",
    "hypothesis", "pytestqt", "importlinter", "grimp", "pypdf", "PyInstaller", "pip",
    "tensorflow", "jax", "paddle", "openvino_telemetry", "torchvision", "torchaudio",
]

# The workstation stack, which the agent carries none of (pyproject's agent extra lists what
# a device needs: numpy, onnxruntime, openvino, opencv, zeroconf, cryptography). PyInstaller
# follows optional imports and hooks, so the big ones arrive unless excluded (NOTES.md:
# torch and scipy through hooks).
WORKSTATION_ONLY = [
    "torch", "PySide6", "shiboken6", "qasync", "sqlalchemy", "alembic", "mako", "nncf",
    "scipy", "sklearn", "matplotlib", "pandas", "sympy", "networkx", "onnx", "onnxscript",
    "onnx_ir", "ml_dtypes", "kornia", "kornia_rs", "torch_pruning", "paramiko", "asyncssh",
    "bcrypt", "nacl", "invoke", "typer", "click", "rich", "psycopg", "psycopg_binary", "fpdf",
    "fontTools", "defusedxml", "PIL", "jinja2", "setuptools",
    "app.core.db", "app.core.models", "app.core.project", "app.ui", "app.annotate", "app.cli",
    # OpenVINO's Python side of the model converters, which import the frameworks above.
    "openvino.frontend.pytorch", "openvino.frontend.tensorflow", "openvino.frontend.jax",
    "openvino.tools",
]

# OpenVINO's shared libraries a CPU-only device needs: the runtime, its CPU plugin, the
# AUTO/HETERO meta-plugins, and the ONNX and IR readers. The GPU and NPU plugins (50 MB) and
# the PyTorch/TensorFlow/Paddle/JAX/GGUF readers are for model conversion or other hardware.
OPENVINO_DEVICE_LIBS = (
    "libopenvino.so", "libopenvino_c.so", "libopenvino_intel_cpu_plugin.so",
    "libopenvino_auto_plugin.so", "libopenvino_auto_batch_plugin.so",
    "libopenvino_hetero_plugin.so", "libopenvino_onnx_frontend.so",
    "libopenvino_ir_frontend.so", "libtbb.so", "libtbbbind_2_5.so", "libtbbmalloc.so",
    "libtbbmalloc_proxy.so", "libhwloc.so",
)


def openvino_libs(names: tuple[str, ...] | None = OPENVINO_DEVICE_LIBS) -> list[tuple[str, str]]:
    """(file, destination folder) of OpenVINO's shared libraries whose names start with one
    of ``names`` (all of them for None), for Analysis(binaries=...)."""
    import openvino

    libs = Path(openvino.__file__).parent / "libs"
    found = []
    for path in sorted(libs.iterdir()):
        if ".so" not in path.name:
            continue
        if names is None or any(path.name.startswith(n.split(".so")[0] + ".so") for n in names):
            found.append((str(path), "openvino/libs"))
    return found
