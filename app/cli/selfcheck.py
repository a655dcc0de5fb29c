"""``edgeloop --selfcheck``: proof that this install of the workstation app has every part.

One line per part (name, OK or FAILED, time, detail), exit status 0 only when all pass:

- qt: Qt on its offscreen platform, a QApplication, one of the app's own widgets painted into
  an image, the app icon read from resources/, QtSvg and QtCharts (pyside6-addons) loaded;
- onnxruntime, openvino, opencv, zeroconf, signing: the agent's checks
  (app/fleet/agent/selfcheck.py) with the same tiny model;
- ssh: the workstation's own SSH client (paramiko, an ed25519 identity, the host-key check)
  against a simulated device's SSH server (asyncssh) on 127.0.0.1, pulling a file with tar
  over an exec channel as ``edgeloop pull`` does;
- torch: a tiny forward pass;
- quantize: ONNX Runtime's INT8 quantizer (what ``edgeloop compress`` runs) on the tiny model,
  which must still give the same class, and nncf (OpenVINO's quantizer) loaded;
- database: a project created in a temporary folder, which runs every Alembic migration
  (the check that a bundle carries app/core/migrations), then reopened.

PyInstaller bundles run it after each build (installers/build.py).
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TextIO

from app.fleet.agent.selfcheck import (
    MODEL,
    Check,
    check_onnxruntime,
    check_opencv,
    check_openvino,
    check_signing,
    check_zeroconf,
    run_checks,
)

REINSTALL = ("reinstall EdgeLoop (`pip install -c requirements/lock.txt .` or the offline "
             "bundle), or rebuild the bundle with `python -m installers.build app`")
# What the Qt check paints: a 2-class confusion matrix, each cell in its own shade.
_MATRIX = ((9, 1), (2, 6))


def check_qt() -> str:
    """Qt offscreen: a QApplication, a real widget of the app painted, icons and plugins."""
    # Before PySide6 loads: the self-check needs no display, and must not use one.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCharts import QChartView
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from app.ui.resources import app_icon, icon
    from app.ui.widgets.confusion_matrix import ConfusionMatrixView, cell_colour

    qapp = QApplication.instance() or QApplication([sys.argv[0]])
    view = ConfusionMatrixView()
    try:
        view.set_matrix(["ok", "scratch"], _MATRIX)
        view.resize(240, 160)
        image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
        largest = max(max(row) for row in _MATRIX)
        for row, counts in enumerate(_MATRIX):
            for column, count in enumerate(counts):
                cell = view.visualRect(view.matrix.index(row, column))
                # Left of the centred count, so the pixel is the cell's background.
                at = QPoint(cell.left() + cell.width() // 6, cell.center().y())
                painted = image.pixelColor(at + view.viewport().geometry().topLeft())
                expected = cell_colour(count, largest)
                if painted.rgb() != expected.rgb():
                    raise RuntimeError(
                        f"the confusion matrix's cell ({row}, {column}) painted "
                        f"{painted.name()} where {expected.name()} belongs: Qt does not draw")
    finally:
        view.deleteLater()
    if app_icon().isNull() or icon("fleet").isNull():
        raise RuntimeError("the app icons (resources/icons, drawn by QtSvg) did not load")
    chart = QChartView()
    chart.deleteLater()
    return (f"PySide6 {pyside_version} on {qapp.platformName()}: confusion matrix painted "
            f"{image.width()}x{image.height()}, icons, QtCharts")


def check_ssh() -> str:
    """The workstation's SSH client against a simulated device's server on loopback."""
    from app.fleet.sim_ssh import DEVICE_USER, DeviceSSHServer, authorize_client_key
    from app.fleet.sim_ssh_thread import DeviceSSHServerThread
    from app.fleet.ssh import DeviceAddress, DeviceConnection, WorkstationIdentity

    with tempfile.TemporaryDirectory(prefix="edgeloop-selfcheck-") as scratch:
        home = Path(scratch, "device")
        home.mkdir()
        (home / "hello.txt").write_text("hello over ssh\n")
        identity = WorkstationIdentity.load_or_create(Path(scratch, "keys"))
        authorize_client_key(home, identity.public_line)
        with DeviceSSHServerThread(DeviceSSHServer(home)) as endpoint:
            address = DeviceAddress("selfcheck", endpoint.host, endpoint.port, DEVICE_USER,
                                    endpoint.host_key_fingerprint)
            with DeviceConnection.connect(address, identity) as conn:
                cipher = conn.transport.remote_cipher
                result = conn.run("tar -c -f - hello.txt")
        if result.status != 0:
            raise RuntimeError(f"tar over SSH failed (exit {result.status}): "
                               f"{result.error_text}")
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
            member = tar.extractfile("hello.txt")
            text = member.read().decode() if member else ""
    if text != "hello over ssh\n":
        raise RuntimeError(f"tar over SSH brought back {text!r}")
    return (f"paramiko client (ed25519 key, host key checked, {cipher}) to an asyncssh "
            f"server on 127.0.0.1:{endpoint.port}; pulled a file with tar")


def check_torch() -> str:
    """torch runs a tiny forward pass and gets the same answer as the arithmetic by hand."""
    import torch

    with torch.no_grad():
        layer = torch.nn.Linear(4, 2)
        layer.weight.copy_(torch.tensor([[1.0, 0.0, -1.0, 0.5], [0.0, 2.0, 0.0, -1.0]]))
        layer.bias.copy_(torch.tensor([0.25, -0.5]))
        out = torch.relu(layer(torch.tensor([[1.0, 2.0, 3.0, 4.0]])))
    if out.tolist() != [[0.25, 0.0]]:
        raise RuntimeError(f"torch computed {out.tolist()}, expected [[0.25, 0.0]]")
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward OK"


def check_quantize() -> str:
    """ONNX Runtime's static INT8 quantization of the self-check model, as ``edgeloop
    compress`` runs it; the INT8 model must pick the same class. nncf must load."""
    import logging

    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from app.fleet.agent.selfcheck import EXPECTED_PROBS, model_input

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = [{"input": model_input()}, {"input": model_input() * 0.5}]

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self.batches.pop() if self.batches else None

    with tempfile.TemporaryDirectory(prefix="edgeloop-selfcheck-") as scratch:
        int8 = Path(scratch, "int8.onnx")
        # The quantizer logs advice on the root logger; a self-check prints only its lines.
        logging.disable(logging.WARNING)
        try:
            quantize_static(str(MODEL), str(int8), Calibration(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
        [probs] = session.run(None, {"input": model_input()})
    expected = int(np.argmax(EXPECTED_PROBS))
    if int(np.argmax(probs)) != expected:
        raise RuntimeError(f"the INT8 model picks class {int(np.argmax(probs))}, the FP32 one "
                           f"{expected}: the quantizer is broken")
    import nncf

    return f"ONNX Runtime INT8 (QDQ) model agrees with FP32; nncf {nncf.__version__}"


def check_database() -> str:
    """A new project (SQLite) runs every Alembic migration; it then reopens at the head."""
    from app.core.project import init_project, open_project
    from app.core.schema import current_revision, head_revision

    with tempfile.TemporaryDirectory(prefix="edgeloop-selfcheck-") as scratch:
        path = Path(scratch, "project")
        init_project(path, admin="selfcheck").close()
        with open_project(path) as project:
            revision = current_revision(project.db)
    head = head_revision()
    if revision != head:
        raise RuntimeError(f"the new project is at schema revision {revision}, not {head}")
    return f"project created and reopened, schema at revision {head}"


def app_checks(model: Path = MODEL) -> list[Check]:
    """The checks of ``edgeloop --selfcheck``."""
    return [
        Check("qt", check_qt, f"Qt (PySide6) or the app's resources are missing; {REINSTALL}; "
                              "on Linux also the system libraries of README's setup (libgl1, "
                              "libegl1, libxkbcommon0, libfontconfig1)"),
        Check("onnxruntime", lambda: check_onnxruntime(model), f"ONNX Runtime: {REINSTALL}"),
        Check("openvino", lambda: check_openvino(model), f"OpenVINO: {REINSTALL}"),
        Check("opencv", check_opencv, f"OpenCV: {REINSTALL}"),
        Check("zeroconf", check_zeroconf,
              "mDNS cannot start on loopback: check that 127.0.0.1 is up, or reinstall"),
        Check("signing", check_signing, f"cryptography cannot sign releases; {REINSTALL}"),
        Check("ssh", check_ssh, f"paramiko/asyncssh or the system's tar is missing; {REINSTALL}"),
        Check("torch", check_torch, f"torch is missing or broken; {REINSTALL}"),
        Check("quantize", check_quantize,
              f"`edgeloop compress` cannot quantize (onnxruntime.quantization, onnx or nncf "
              f"is missing or broken); {REINSTALL}"),
        Check("database", check_database,
              f"projects cannot be created (SQLAlchemy, Alembic or the migrations are "
              f"missing); {REINSTALL}"),
    ]


def selfcheck(out: TextIO = sys.stdout) -> int:
    """Run the workstation's self-check; the exit status (0: every part works)."""
    return run_checks("edgeloop", app_checks(), out)
