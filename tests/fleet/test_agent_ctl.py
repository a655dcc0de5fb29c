"""The device side of docs/device-protocol.md: ``ctl pull`` (archive, ack line, hold),
``ctl receive`` (a release as a tar archive), ``ctl authorize`` and ``ctl status
--drift-since``, through the real CLI and module by module."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.fleet.agent.authorize import authorize_key, authorized_keys_path, parse_public_key_line
from app.fleet.agent.errors import AgentError, ReleaseRejected
from app.fleet.agent.home import AgentConfig, AgentHome
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent.pull import (
    AckLine, PullLimits, apply_ack, parse_ack_line, read_ack_line, read_capture, write_archive,
)
from app.fleet.agent.receive import receive_release
from app.fleet.agent.spool import Spool, captures_in, held_captures
from tests.support.releases import make_release

AGENT = [sys.executable, "-m", "app.fleet.agent"]


def ctl(home: AgentHome, *args: str, stdin: bytes = b"",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AGENT, "--home", str(home.root), "ctl", *args], input=stdin,
                          capture_output=True, timeout=60, env=env)


@pytest.fixture
def home(tmp_path: Path) -> AgentHome:
    home = AgentHome(tmp_path / "device")
    home.create(AgentConfig(device_id="cam-1", authorized_keys="ssh/authorized_keys"))
    return home


def open_spool(home: AgentHome) -> Spool:
    return home.open_spool(home.load_config())


def fill(home: AgentHome, n: int, size: int = 1000) -> list[str]:
    spool = open_spool(home)
    return [spool.add(bytes([i % 256]) * size, "jpg", {"n": i}) for i in range(n)]


def members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return tar.getmembers()


def extracted(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def sent_ids(archive: bytes) -> list[str]:
    return [m.name[:-5] for m in members(archive) if m.name.endswith(".json")]


def spool_ids(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def archive_of(spool: Path, limits: PullLimits = PullLimits()) -> bytes:
    out = io.BytesIO()
    write_archive(spool, out, limits)
    return out.getvalue()


# -- pull: the archive ------------------------------------------------------------------------
def test_pull_streams_sidecar_then_image_in_id_order(home: AgentHome) -> None:
    ids = fill(home, 3)
    result = ctl(home, "pull")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.decode().splitlines()[-1]) == {"acked": 0, "held": 0}
    listed = members(result.stdout)
    assert [m.name for m in listed] == [f"{i}{ext}" for i in ids for ext in (".json", ".jpg")]
    contents = extracted(result.stdout)
    for member in listed:
        assert contents[member.name] == (home.spool / member.name).read_bytes()
        assert (member.mode, member.uid, member.gid, member.uname, member.gname) == (
            0o644, 0, 0, "", "")
        assert member.mtime == int((home.spool / member.name).stat().st_mtime)
    assert len(result.stdout) % tarfile.RECORDSIZE == 0


def test_pull_respects_after_limit_and_max_bytes(home: AgentHome) -> None:
    ids = fill(home, 10, size=1000)
    assert sent_ids(archive_of(home.spool)) == ids
    assert sent_ids(archive_of(home.spool, PullLimits(after=ids[3]))) == ids[4:]
    assert sent_ids(archive_of(home.spool, PullLimits(after="3"))) == ids[4:]  # any padding
    assert sent_ids(archive_of(home.spool, PullLimits(limit=2))) == ids[:2]
    assert sent_ids(archive_of(home.spool, PullLimits(max_bytes=1))) == ids[:1]  # at least one
    one = sum(p.stat().st_size for p in home.spool.glob(f"{ids[0]}.*"))
    assert sent_ids(archive_of(home.spool, PullLimits(max_bytes=3 * one + 10))) == ids[:3]
    assert sent_ids(archive_of(home.spool, PullLimits(after=ids[-1]))) == []
    for bad in ({"after": "../1"}, {"limit": 0}, {"max_bytes": 0}):
        with pytest.raises(AgentError):
            PullLimits(**bad)  # type: ignore[arg-type]


def test_pull_cli_options(home: AgentHome) -> None:
    ids = fill(home, 5)
    result = ctl(home, "pull", "--after", ids[0], "--limit", "2", "--max-bytes", "100000")
    assert result.returncode == 0 and sent_ids(result.stdout) == ids[1:3]
    refused = ctl(home, "pull", "--after", "not-an-id")
    assert refused.returncode == 1 and refused.stdout == b""
    assert refused.stderr.decode().startswith("edgeloop-agent: pull: --after")


def test_a_capture_that_vanishes_is_left_out(home: AgentHome) -> None:
    ids = fill(home, 3)
    (home.spool / f"{ids[1]}.jpg").unlink()  # evicted between the listing and the read
    assert read_capture(captures_in(home.spool)[int(ids[1])]) is None
    assert sent_ids(archive_of(home.spool)) == [ids[0], ids[2]]


def test_pull_never_follows_a_path_out_of_the_spool(home: AgentHome, tmp_path: Path) -> None:
    ids = fill(home, 3)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the network")
    # A sidecar naming a path outside: sent as it is, with the capture's own image.
    odd = home.spool / f"{ids[0]}.json"
    odd.write_text(json.dumps({"id": ids[0], "file": "../../secret.txt"}))
    # A capture whose only image is a link out of the spool: left out.
    (home.spool / f"{ids[1]}.jpg").unlink()
    (home.spool / f"{ids[1]}.png").symlink_to(secret)
    (home.spool / f"{ids[1]}.json").write_text(json.dumps({"file": f"{ids[1]}.png"}))
    archive = archive_of(home.spool)
    assert [m.name for m in members(archive)] == [
        f"{ids[0]}.json", f"{ids[0]}.jpg", f"{ids[2]}.json", f"{ids[2]}.jpg"]
    assert b"not for the network" not in archive
    assert extracted(archive)[f"{ids[0]}.json"] == odd.read_bytes()


# -- pull: the ack line -----------------------------------------------------------------------
def test_ack_deletes_up_to_the_id_and_quarantines_held_ones(home: AgentHome) -> None:
    ids = fill(home, 6)
    line = json.dumps({"ack": ids[3], "hold": [ids[1], ids[5]]}).encode() + b"\n"
    result = ctl(home, "pull", stdin=line)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.decode().splitlines()[-1]) == {"acked": 3, "held": 2}
    assert spool_ids(home.spool) == [ids[4]]
    assert sorted(p.name for p in home.quarantine.iterdir()) == [
        f"{ids[1]}.jpg", f"{ids[1]}.json", f"{ids[5]}.jpg", f"{ids[5]}.json"]
    status = json.loads(ctl(home, "status").stdout)
    assert status["held"] == 2
    assert status["spool"]["captures"] == 1 and status["spool"]["acked"] == 3


@pytest.mark.parametrize("line", [b"{not json\n", b"[1, 2]\n", b'{"ack": 5}\n',
                                  b'{"ack": "../1"}\n', b'{"ack": null, "hold": "1"}\n'])
def test_a_malformed_ack_line_deletes_nothing_and_fails(home: AgentHome, line: bytes) -> None:
    ids = fill(home, 3)
    result = ctl(home, "pull", stdin=line)
    assert result.returncode == 1
    assert result.stderr.decode().startswith("edgeloop-agent: pull: the ack line")
    assert "nothing deleted" in result.stderr.decode()
    assert spool_ids(home.spool) == ids and not home.quarantine.exists()


@pytest.mark.parametrize("line", [b"", b"\n", b"  \n", b'{"ack": null}\n', b"{}"])
def test_eof_or_an_empty_ack_acknowledges_nothing(home: AgentHome, line: bytes) -> None:
    ids = fill(home, 3)
    result = ctl(home, "pull", stdin=line)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.decode().splitlines()[-1]) == {"acked": 0, "held": 0}
    assert spool_ids(home.spool) == ids


def test_the_ack_line_waits_no_longer_than_its_timeout() -> None:
    read_end, write_end = os.pipe()
    with open(read_end, "rb", buffering=0) as stream:
        with pytest.raises(AgentError, match="no ack line within 0.1 s"):
            read_ack_line(stream, timeout=0.1)
        os.write(write_end, b'{"ack": "7"}')  # the last line may lack its newline
        os.close(write_end)
        assert read_ack_line(stream, timeout=1) == b'{"ack": "7"}'


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
_ID_TEXT = st.from_regex(r"[0-9]{1,3}", fullmatch=True)
_VALID = st.fixed_dictionaries({"ack": st.none() | _ID_TEXT},
                               optional={"hold": st.lists(_ID_TEXT, max_size=3)})
_NEARLY = st.fixed_dictionaries({}, optional={
    "ack": st.none() | _ID_TEXT | st.text(max_size=4) | _JSON,
    "hold": st.lists(_ID_TEXT | st.text(max_size=4), max_size=3) | _JSON,
})
_LINES = (st.one_of(_VALID, _NEARLY, _JSON).map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=40))


def _tiny_spool(root: Path, n: int) -> tuple[Spool, list[str]]:
    """A spool of ``n`` captures written directly (no fsync: hypothesis runs this often)."""
    folder = root / "spool"
    folder.mkdir()
    ids = [f"{seq:012d}" for seq in range(n)]
    for cid in ids:
        (folder / f"{cid}.jpg").write_bytes(b"x")
        (folder / f"{cid}.json").write_text(json.dumps({"id": cid, "file": f"{cid}.jpg"}))
    return Spool(folder, root / "state" / "spool.json", 10**7), ids


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=_LINES)
def test_random_ack_lines_delete_only_what_a_valid_line_says(line: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spool, ids = _tiny_spool(root, 4)
        try:
            ack = parse_ack_line(line)
        except AgentError:
            assert spool_ids(spool.folder) == ids  # refused before anything was touched
            return
        apply_ack(spool, ack, root / "quarantine")
        held = {f"{int(cid):012d}" for cid in ack.hold} & set(ids)
        up_to = int(ack.ack) if ack.ack is not None else -1
        assert spool_ids(spool.folder) == [i for i in ids if i not in held and int(i) > up_to]
        assert spool_ids(root / "quarantine") == sorted(held)


# -- the spool's hold -------------------------------------------------------------------------
def test_quarantine_keeps_the_newest_captures(home: AgentHome) -> None:
    ids = fill(home, 5)
    spool = open_spool(home)
    for cid in ids:
        spool.hold([cid], home.quarantine, keep=3)
    assert spool_ids(home.quarantine) == ids[2:] and held_captures(home.quarantine) == 3
    state = json.loads((home.state / "spool.json").read_text())
    assert state["quarantine_dropped"] == 2 and state["held"] == 5


def test_the_loop_forgets_held_captures_and_never_touches_quarantine(home: AgentHome) -> None:
    writer = open_spool(home)  # the running agent loop's instance
    ids = [writer.add(bytes([i]) * 100, "jpg", {}) for i in range(10)]
    ctl_spool = open_spool(home)  # what `ctl pull` opens
    apply_ack(ctl_spool, AckLine(ack=ids[4], hold=(ids[2], ids[7])), home.quarantine)
    writer.add(b"new" * 30, "jpg", {})
    stats = writer.stats()
    on_disk = sum(p.stat().st_size for p in home.spool.iterdir())
    assert stats.captures == 5 and stats.bytes == on_disk
    assert stats.acked == 4 and stats.evicted == 0
    assert spool_ids(home.quarantine) == [ids[2], ids[7]]
    assert len(list(home.quarantine.iterdir())) == 4  # images and sidecars intact


# -- receive ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    folder, _ = make_release(tmp_path_factory.mktemp("build"), "edge-1", key, seed=1,
                             openvino=False)
    return folder, key


@pytest.fixture
def trusting_home(home: AgentHome, release: tuple[Path, Ed25519PrivateKey]) -> AgentHome:
    home.add_trusted_key("project", public_key_to_text(release[1].public_key()))
    return home


def tar_of(folder: Path, extra: Callable[[tarfile.TarFile], None] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
        if extra:
            extra(tar)
    return out.getvalue()


def test_receive_installs_the_release(trusting_home: AgentHome,
                                      release: tuple[Path, Ed25519PrivateKey]) -> None:
    home = trusting_home
    (home.inbox / "edge-1").mkdir(parents=True)
    (home.inbox / "edge-1" / "stale.bin").write_bytes(b"from an older upload")
    result = ctl(home, "receive", "edge-1", stdin=tar_of(release[0]))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["active"] == "edge-1"
    assert sorted(p.name for p in (home.inbox / "edge-1").iterdir()) == sorted(
        p.name for p in release[0].iterdir())
    assert [p.name for p in home.inbox.iterdir()] == ["edge-1"]
    assert (home.state / "reload-request").exists()
    assert json.loads(ctl(home, "status").stdout)["current"] == "edge-1"


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x",
            link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return add


@pytest.mark.parametrize(("extra", "message"), [
    (_member("../x"), "'../x' is not a plain file name"),
    (_member("/etc/x"), "'/etc/x' is not a plain file name"),
    (_member("sub/x"), "'sub/x' is not a plain file name"),
    (_member("link", tarfile.SYMTYPE, link="/etc/passwd"), "'link' is a symbolic link"),
    (_member("hard", tarfile.LNKTYPE, link="model.onnx"), "'hard' is a hard link"),
    (_member("sub", tarfile.DIRTYPE), "'sub' is a folder"),
    (_member("model.onnx"), "'model.onnx' appears twice"),
])
def test_receive_refuses_members_that_are_not_plain_files(
    home: AgentHome, release: tuple[Path, Ed25519PrivateKey],
    extra: Callable[[tarfile.TarFile], None], message: str,
) -> None:
    with pytest.raises(ReleaseRejected, match=message):
        receive_release(io.BytesIO(tar_of(release[0], extra)), home.inbox, "edge-1")
    assert list(home.inbox.iterdir()) == []  # no partial folder, no half release


def test_receive_refusal_through_the_cli(home: AgentHome,
                                         release: tuple[Path, Ed25519PrivateKey]) -> None:
    result = ctl(home, "receive", "edge-1", stdin=tar_of(release[0], _member("../x")))
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "edgeloop-agent: archive member '../x' is not a plain file name; release refused")
    assert list(home.inbox.iterdir()) == []
    bad_version = ctl(home, "receive", "../edge", stdin=tar_of(release[0]))
    assert bad_version.returncode == 1 and b"release version '../edge'" in bad_version.stderr
    garbage = ctl(home, "receive", "edge-1", stdin=b"not a tar archive" * 100)
    assert garbage.returncode == 1 and b"unreadable" in garbage.stderr
    assert list(home.inbox.iterdir()) == []


def test_receive_checks_free_space_before_each_member(
    home: AgentHome, release: tuple[Path, Ed25519PrivateKey]
) -> None:
    def nearly_full(_: Path) -> SimpleNamespace:
        return SimpleNamespace(free=17 * 1024 * 1024)  # margin 16 MiB: room for 1 MiB

    big = _member("weights.bin", data=b"\0" * (2 * 1024 * 1024))
    with pytest.raises(AgentError, match=r"has 17.0 MiB free") as refused:
        receive_release(io.BytesIO(tar_of(release[0], big)), home.inbox, "edge-1",
                        disk_usage=nearly_full)
    assert "weights.bin" in str(refused.value)
    assert list(home.inbox.iterdir()) == []


# -- authorize --------------------------------------------------------------------------------
def key_line(comment: str = "engineer@workstation") -> tuple[str, str]:
    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    blob = base64.b64decode(line.split()[1])
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{line} {comment}", fingerprint


def test_authorize_appends_a_key_once(home: AgentHome) -> None:
    line, fingerprint = key_line()
    for _ in range(2):
        result = ctl(home, "authorize", stdin=(line + "\n").encode())
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"authorized": fingerprint}
    other, _ = key_line("second")
    assert ctl(home, "authorize", stdin=other.encode()).returncode == 0
    path = home.root / "ssh" / "authorized_keys"
    assert path.read_text().splitlines() == [line, other]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_authorize_writes_under_the_users_home_by_default(tmp_path: Path) -> None:
    home = AgentHome(tmp_path / "device")
    home.create(AgentConfig(device_id="cam-1"))
    line, fingerprint = key_line()
    env = dict(os.environ, HOME=str(tmp_path / "user"))
    result = ctl(home, "authorize", stdin=line.encode(), env=env)
    assert json.loads(result.stdout) == {"authorized": fingerprint}
    assert (tmp_path / "user" / ".ssh" / "authorized_keys").read_text() == line + "\n"
    assert authorized_keys_path("keys", home.root) == home.root / "keys"
    assert authorized_keys_path("/etc/keys", home.root) == Path("/etc/keys")


def _garbage_lines() -> list[str]:
    line, _ = key_line()
    key_type, data = line.split()[:2]
    return [
        "", "hello", f"{key_type}", f"{key_type} not-base64!!", f"ssh-rsa {data}",
        f'command="rm -rf /" {key_type} {data}', f"{line}\n{line}", f"ssh-dss {data}",
        f"{key_type} {base64.b64encode(b'short').decode()}", f"{key_type} {data} bell\a",
        f"{key_type} {base64.b64encode(base64.b64decode(data)[:-3]).decode()}",
    ]


@pytest.mark.parametrize("garbage", _garbage_lines())
def test_authorize_refuses_garbage(home: AgentHome, garbage: str) -> None:
    with pytest.raises(AgentError, match="not an OpenSSH public key line"):
        authorize_key(home.root / "ssh" / "authorized_keys", garbage)
    assert not (home.root / "ssh" / "authorized_keys").exists()


def test_authorize_refusal_through_the_cli(home: AgentHome) -> None:
    result = ctl(home, "authorize", stdin=b"ssh-ed25519 AAAA")
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode().startswith("edgeloop-agent: authorize: not an OpenSSH")


@settings(max_examples=100, deadline=None)
@given(prefix=st.sampled_from(["", "ssh-ed25519 ", "ssh-rsa AAAAB3NzaC1yc2E", "ssh-ed25519 AAAA"]),
       text=st.text(max_size=80))
def test_random_key_lines_are_refused_with_the_agents_error(prefix: str, text: str) -> None:
    with pytest.raises(AgentError, match="not an OpenSSH public key line"):
        parse_public_key_line(prefix + text)


# -- status -----------------------------------------------------------------------------------
def test_status_reports_agent_home_held_and_drift_since(home: AgentHome) -> None:
    home.drift.mkdir(parents=True, exist_ok=True)
    for hour in ("2026110108", "2026110109", "2026110110"):
        (home.drift / f"{hour}.json").write_text(json.dumps({"hour": hour, "n": 1}))
    (home.drift / "notes.json").write_text("{}")
    plain = json.loads(ctl(home, "status").stdout)
    assert "drift" not in plain
    assert plain["agent"] == "0.1.0" and plain["home"] == str(home.root) and plain["held"] == 0
    assert {"status", "current", "previous", "spool"} <= set(plain)
    since = json.loads(ctl(home, "status", "--drift-since", "2026110108").stdout)
    assert [r["hour"] for r in since["drift"]] == ["2026110109", "2026110110"]
    assert json.loads(ctl(home, "status", "--drift-since", "2026110110").stdout)["drift"] == []
    bad = ctl(home, "status", "--drift-since", "yesterday")
    assert bad.returncode == 1 and b"YYYYmmddHH" in bad.stderr


def test_pull_starts_without_the_heavy_modules(home: AgentHome) -> None:
    code = ("import sys; from app.fleet.agent.cli import main; sys.argv[1:] = []; "
            f"rc = main(['--home', {str(home.root)!r}, 'ctl', 'pull', '--ack-timeout', '1']); "
            "heavy = [m for m in ('cv2', 'onnxruntime', 'openvino', 'numpy', 'cryptography', "
            "'app.fleet.agent.activation', 'app.fleet.agent.runtime') if m in sys.modules]; "
            "print(heavy, file=sys.stderr); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], input=b"", capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines()[-1] == "[]"
