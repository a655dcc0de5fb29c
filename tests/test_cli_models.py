"""The dataset and training commands as a user runs them (the real console script)."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import cli_project, edgeloop  # noqa: F401 (cli_project is a fixture)


def test_generate_freeze_diff_and_train(cli_project: Path) -> None:  # noqa: F811
    p = ["--project", str(cli_project)]
    made = edgeloop("dataset", "generate", "120", "--size", "64", *p)
    assert made.returncode == 0, made.stderr
    assert "Imported 120 new capture(s)" in made.stdout
    again = edgeloop("dataset", "generate", "120", "--size", "64", *p)
    assert "Imported 0 new capture(s) (120 already there)" in again.stdout

    first = edgeloop("dataset", "freeze", *p)
    assert first.returncode == 0, first.stderr
    assert "Froze inspection@1: 120 samples" in first.stdout
    unchanged = edgeloop("dataset", "freeze", *p)
    assert unchanged.returncode == 2 and "Traceback" not in unchanged.stderr

    assert edgeloop("dataset", "generate", "40", "--size", "64", "--start", "120",
                    *p).returncode == 0
    second = edgeloop("dataset", "freeze", "--notes", "more frames", *p)
    assert "Froze inspection@2: 160 samples" in second.stdout
    listed = edgeloop("dataset", "list", *p)
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [
        "inspection@1", "inspection@2"]
    diff = edgeloop("dataset", "diff", "inspection@1", "inspection@2", *p)
    assert diff.returncode == 0, diff.stderr
    assert "40 added, 0 removed, 0 relabelled" in diff.stdout

    trained = edgeloop("train", "--epochs", "1", "--size", "64", "--augment", "none", *p)
    assert trained.returncode == 0, trained.stderr
    assert "candidate edge-1" in trained.stdout
    bad = edgeloop("train", "--augment", "wild", *p)
    assert bad.returncode == 2 and "choose one of none, flip, mild, strong" in bad.stderr
    missing = edgeloop("train", "--dataset", "inspection@9", *p)
    assert missing.returncode == 2 and "inspection@9" in missing.stderr

    # From the candidate to a signed release, as a user types it.
    compressed = edgeloop("compress", "edge-1", "--format", "onnx_int8", "--calibration", "40", *p)
    assert compressed.returncode == 0, compressed.stderr
    assert "onnx_int8" in compressed.stdout and "onnx " in compressed.stdout
    evaluated = edgeloop("evaluate", "edge-1", "--repeats", "5", *p)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "on the test split of inspection@2" in evaluated.stdout
    assert "RECALL" in evaluated.stdout and "onnx_int8" in evaluated.stdout
    listed = edgeloop("models", "list", *p)
    assert listed.stdout.splitlines()[1].split()[:3] == ["edge-1", "edge", "candidate"]
    early = edgeloop("models", "approve", "edge-1", *p)
    assert early.returncode == 2 and "run `edgeloop models gate` first" in early.stderr
    too_small = edgeloop("models", "gate", "edge-1", "--max-size-kb", "1", "--repeats", "5", *p)
    assert too_small.returncode == 1 and "FAILED the gate" in too_small.stdout
    assert "budget 1,024 bytes" in too_small.stdout
    gated = edgeloop("models", "gate", "edge-1", "--repeats", "5", *p)
    assert gated.returncode == 0 and "PASSED the gate" in gated.stdout, gated.stdout + gated.stderr
    edgeloop("users", "add", "ann", "--role", "annotator", *p)
    refused = edgeloop("models", "approve", "edge-1", *p, user="ann")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    approved = edgeloop("models", "approve", "edge-1", "--note", "first", *p)
    assert approved.returncode == 0, approved.stderr
    assert "edgeloop deploy edge-1" in approved.stdout
    shown = edgeloop("models", "show", "edge-1", *p)
    assert "edge-1 (edge): approved" in shown.stdout and "release" in shown.stdout
    releases = edgeloop("releases", "list", *p)
    assert releases.stdout.splitlines()[1].split()[:2] == ["edge-1", "approved"]
