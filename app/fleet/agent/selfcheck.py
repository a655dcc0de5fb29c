"""``edgeloop-agent --selfcheck``: proof that this install of the agent can do its work.

Each check loads one part the agent needs, for real, and prints one line: its name, OK or
FAILED, the time it took and a short detail; a failure says which part and what to do. The
exit status is 0 only when every check passes. PyInstaller bundles run it after each build
(installers/build.py), so a module or library file the bundle lacks fails the build.

The inference check runs a tiny ONNX model shipped beside this module (selfcheck.onnx, made
by installers/selfcheck_model.py, which also holds the reference output) in ONNX Runtime and
in OpenVINO. The agent has no SSH code of its own: the device's OpenSSH server runs
``edgeloop-agent ctl ...`` for the workstation, so the "ssh" check runs those control commands
on a scratch home folder. The workstation's self-check (app/cli/selfcheck.py) reuses the
runner and the checks here.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import app

MODEL = Path(__file__).with_name("selfcheck.onnx")
MODEL_INPUT_SHAPE = (1, 3, 8, 8)
# The model's output on model_input(), computed by ONNX's reference evaluator when the model
# was made (installers/selfcheck_model.py; tests/installers/test_selfcheck.py keeps them
# current).
EXPECTED_PROBS = (0.259701, 0.03844, 0.701859)
TOLERANCE = 1e-4
REINSTALL = ("reinstall the agent (its bundle, or `pip install '.[agent]'` with the pinned "
             "versions of requirements/lock.txt)")


@dataclass(frozen=True)
class Check:
    """One part to check: ``run`` returns a short detail, or raises when the part is broken;
    ``fix`` tells the user what to do then."""

    name: str
    run: Callable[[], str]
    fix: str


@dataclass(frozen=True)
class Outcome:
    """How one check went."""

    name: str
    ok: bool
    detail: str
    ms: float

    def line(self) -> str:
        status = "OK" if self.ok else "FAILED"
        return f"{self.name:<12} {status:<6} {self.ms:8.0f} ms  {self.detail}"


def run_checks(program: str, checks: Sequence[Check], out: TextIO = sys.stdout) -> int:
    """Run every check (a failure does not stop the others), print one line each and a
    summary; the exit status: 0 when all passed, else 1."""
    print(f"{program} {app.__version__} self-check ({sys.executable})", file=out, flush=True)
    outcomes = []
    for check in checks:
        start = time.perf_counter()
        try:
            outcome = Outcome(check.name, True, check.run(), 0.0)
        except Exception as exc:  # any failure of a part is the answer this check gives
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
            outcome = Outcome(check.name, False, f"{detail} -> {check.fix}", 0.0)
        outcome = Outcome(outcome.name, outcome.ok, outcome.detail,
                          (time.perf_counter() - start) * 1000)
        outcomes.append(outcome)
        print(outcome.line(), file=out, flush=True)
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        print(f"self-check FAILED: {', '.join(failed)} ({len(failed)} of {len(outcomes)})",
              file=out, flush=True)
        return 1
    print(f"self-check passed: {len(outcomes)} of {len(outcomes)} checks OK", file=out,
          flush=True)
    return 0


def model_input():  # type: ignore[no-untyped-def]  # numpy loads inside the checks only
    """The fixed input the self-check model is run on (a float32 ramp from -1 to 1)."""
    import numpy as np

    size = int(np.prod(MODEL_INPUT_SHAPE))
    return np.linspace(-1.0, 1.0, size, dtype=np.float32).reshape(MODEL_INPUT_SHAPE)


def _compare(runtime: str, probs: object) -> str:
    import numpy as np

    got = np.asarray(probs, dtype=np.float32).reshape(-1)
    worst = float(np.max(np.abs(got - np.asarray(EXPECTED_PROBS, dtype=np.float32))))
    if got.shape != (len(EXPECTED_PROBS),) or worst > TOLERANCE:
        raise RuntimeError(f"{runtime} computed {np.round(got, 6).tolist()} on the self-check "
                           f"model, expected {list(EXPECTED_PROBS)}: its arithmetic is wrong")
    return f"max error {worst:.1e}"


def _one_line(exc: Exception) -> str:
    """The informative line of a runtime's error (OpenVINO's start with source locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[0]


def _require_model(model: Path) -> None:
    if not model.is_file():
        raise FileNotFoundError(f"the self-check model {model} is missing")


def check_onnxruntime(model: Path = MODEL) -> str:
    """ONNX Runtime loads the tiny model and computes the expected output."""
    import onnxruntime as ort

    _require_model(model)
    try:
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RuntimeError(f"ONNX Runtime cannot load {model}: {_one_line(exc)}") from exc
    [probs] = session.run(None, {session.get_inputs()[0].name: model_input()})
    return f"onnxruntime {ort.__version__}, {_compare('ONNX Runtime', probs)}"


def check_openvino(model: Path = MODEL) -> str:
    """OpenVINO reads the same ONNX model, compiles it for the CPU and runs it."""
    import openvino as ov

    _require_model(model)
    core = ov.Core()
    try:
        compiled = core.compile_model(core.read_model(str(model)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32"})
    except Exception as exc:
        raise RuntimeError(f"OpenVINO cannot read or compile {model}: {_one_line(exc)}") from exc
    result = compiled.create_infer_request().infer({0: model_input()})
    probs = next(iter(result.values()))
    return f"openvino {ov.__version__} on CPU, {_compare('OpenVINO', probs)}"


def check_opencv() -> str:
    """OpenCV encodes a frame as PNG (lossless, decoded back exactly) and as JPEG."""
    import cv2
    import numpy as np

    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[:, :, 0] = np.arange(64, dtype=np.uint8) * 4
    frame[:, :, 2] = (np.arange(48, dtype=np.uint8) * 5)[:, None]
    ok_png, png = cv2.imencode(".png", frame)
    ok_jpg, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not (ok_png and ok_jpg):
        raise RuntimeError("OpenCV could not encode PNG and JPEG (codecs missing)")
    back = cv2.imdecode(png, cv2.IMREAD_COLOR)
    lossy = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    if back is None or not np.array_equal(back, frame):
        raise RuntimeError("OpenCV's PNG round trip changed the image")
    if lossy is None or lossy.shape != frame.shape:
        raise RuntimeError("OpenCV could not decode its own JPEG")
    return f"opencv {cv2.__version__}, PNG and JPEG round trip"


def check_zeroconf() -> str:
    """python-zeroconf starts on 127.0.0.1 only (never the LAN: a self-check sends no
    multicast to the network) and closes."""
    from zeroconf import IPVersion, Zeroconf, __version__

    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        running = zc.loop is not None and zc.loop.is_running()
    finally:
        zc.close()
    if not running:
        raise RuntimeError("zeroconf started but its event loop is not running")
    return f"zeroconf {__version__} started on 127.0.0.1 and closed"


def check_signing() -> str:
    """cryptography signs with ed25519 and verifies as the release manifest check does,
    through the agent's own key parsing; a changed byte must fail."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from app.fleet.agent.manifest import key_fingerprint, public_key_from_text, public_key_to_text

    private = Ed25519PrivateKey.generate()
    trusted = public_key_from_text(public_key_to_text(private.public_key()))
    data = b'{"format": 1, "version": "selfcheck"}'
    signature = private.sign(data)
    trusted.verify(signature, data)
    try:
        trusted.verify(signature, data.replace(b"1", b"2"))
    except InvalidSignature:
        return f"ed25519 sign and verify ({key_fingerprint(trusted)}), tampering detected"
    raise RuntimeError("a tampered manifest verified: ed25519 verification is broken")


def check_control_commands() -> str:
    """What stands for SSH on a device: the agent holds no SSH code; the device's OpenSSH
    server runs ``edgeloop-agent ctl ...`` for the workstation. This runs ``init`` and
    ``ctl status`` on a scratch home, as a workstation's SSH command would."""
    import contextlib
    import io
    import json

    from app.fleet.agent.cli import main

    scratch = Path(tempfile.mkdtemp(prefix="edgeloop-selfcheck-"))
    try:
        home = str(scratch / "home")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--home", home, "init", "--id", "selfcheck", "--interfaces",
                         "127.0.0.1"])
            if code == 0:
                out.seek(0)
                out.truncate()
                code = main(["--home", home, "ctl", "status"])
        if code != 0:
            raise RuntimeError(f"`ctl status` on a scratch home failed: {err.getvalue().strip()}")
        status = json.loads(out.getvalue())
        if status.get("device_id") != "selfcheck":
            raise RuntimeError(f"`ctl status` answered {status!r}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sshd = shutil.which("sshd", path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))
    where = f"OpenSSH server at {sshd}" if sshd else "no sshd here (the device needs OpenSSH)"
    return f"no SSH client in the agent: ctl init/status answered; {where}"


def agent_checks(model: Path = MODEL) -> list[Check]:
    """The checks of ``edgeloop-agent --selfcheck``, ``model`` being the ONNX file to run."""
    return [
        Check("onnxruntime", lambda: check_onnxruntime(model),
              f"ONNX Runtime or the self-check model is broken; {REINSTALL}"),
        Check("openvino", lambda: check_openvino(model),
              f"OpenVINO, its CPU plugin or its ONNX reader is missing; {REINSTALL}"),
        Check("opencv", check_opencv, f"OpenCV (opencv-python-headless) is broken; {REINSTALL}"),
        Check("zeroconf", check_zeroconf,
              "mDNS cannot start on loopback: check that 127.0.0.1 is up, or reinstall"),
        Check("signing", check_signing,
              f"cryptography cannot verify release signatures; {REINSTALL}"),
        Check("ssh", check_control_commands,
              "the control commands the workstation runs over SSH fail; see the error, "
              f"then {REINSTALL}"),
    ]


def selfcheck(model: Path = MODEL, out: TextIO = sys.stdout) -> int:
    """Run the agent's self-check; the exit status (0: every part works)."""
    return run_checks("edgeloop-agent", agent_checks(model), out)
