"""``emostream classify`` as a user runs it: a real subprocess, real files, good and bad mixed."""

import json
import subprocess
import sys

import pytest

from emostream.labels import LABELS

FIELDS = {"file", "label", "confidence", "probs", "valence", "arousal", "transcript", "timings_ms"}


def run(*args):
    return subprocess.run([sys.executable, "-m", "emostream.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # loads the models in a new process
def test_classify_mixed_files_keeps_going_and_fails_at_the_end(audio_dir):
    good = ["happy.wav", "sad_stereo_44k.flac", "clipped.wav"]
    bad = ["corrupt.wav", "empty.wav", "silence.wav", "nan.wav", "too_long.wav", "missing.wav"]
    files = [audio_dir / n for n in (bad[:2] + good[:1] + bad[2:] + good[1:])]
    proc = run("classify", *files, "--threads", "2")
    assert proc.returncode == 1
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"].split("/")[-1] for r in records] == [good[0], good[1], good[2]]
    for r in records:
        assert FIELDS <= set(r)
        assert set(r["probs"]) == set(LABELS)
        assert set(r["timings_ms"]) == {"sec", "asr", "text", "fusion"}
    errors = [line for line in proc.stderr.splitlines() if line.startswith("emostream: ") and ".wav:" in line]
    assert len(errors) == len(bad)
    assert "Traceback" not in proc.stderr
    assert "6 of 9 file(s) could not be classified" in proc.stderr


@pytest.mark.slow  # loads the models in a new process
def test_classify_sample_table():
    proc = run("classify", "--sample", "--format", "table", "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    assert "happy_news.wav" in proc.stdout and "angry_complaint.wav" in proc.stdout


@pytest.mark.slow  # loads the models in a new process
def test_classify_with_the_shipped_searched_fusion(audio_dir, tmp_path):
    """--fusion searched loads the cell that `emostream search` found (shipped in emostream/weights)."""
    proc = run("classify", audio_dir / "happy.wav", "--fusion", "searched", "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert abs(sum(record["probs"].values()) - 1) < 1e-3 and record["label"] in LABELS
    assert record["model_ids"]["fusion"] == "searched-cell"
    missing = run("classify", audio_dir / "happy.wav", "--fusion", tmp_path / "nothing.json")
    assert missing.returncode == 2 and "no searched fusion cell" in missing.stderr and "Traceback" not in missing.stderr
    wrong = run("classify", audio_dir / "happy.wav", "--fusion", "searched", "--sec-backend", "onnxruntime")
    assert wrong.returncode == 2 and "torch backend" in wrong.stderr


def test_help_explains_commands():
    proc = run("--help")
    assert proc.returncode == 0
    assert "classify" in proc.stdout and "train" in proc.stdout
    proc = run("classify", "--help")
    assert "--format" in proc.stdout and "resampled" in proc.stdout and "--fusion" in proc.stdout
    proc = run("search", "--help")
    assert proc.returncode == 0 and "random cells" in proc.stdout and "held out" in proc.stdout


@pytest.mark.slow  # loads the models in a new process
def test_compile_builds_the_auto_backend_and_checks_it(tmp_path):
    proc = run("compile", "--cache", tmp_path, "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    assert "largest probability difference vs torch on the demo clips" in proc.stdout
    assert list((tmp_path / "onnx").glob("sec-*.onnx"))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        missing = run("compile", "--backend", "tensorrt", "--cache", tmp_path)
        assert missing.returncode == 2 and "tensorrt is not available here" in missing.stderr
        assert "Traceback" not in missing.stderr
