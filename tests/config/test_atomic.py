"""A writer killed at any moment leaves no output under the output's name."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO
from dpo_study.config import atomic
from dpo_study.stages.data import read_jsonl, write_jsonl

# Writes rows to OUT with write_jsonl; the row generator SIGKILLs the process half-way through.
KILLED_WRITER = """
import os, signal, sys
from dpo_study.stages.data import write_jsonl

def rows():
    for i in range(1000):
        if i == 500:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        yield {"id": i, "text": "x" * 100}

write_jsonl(rows(), sys.argv[1])
"""


def test_sigkill_during_a_write_leaves_no_output(tmp_path):
    out = tmp_path / "responses.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(out)], env={**os.environ, "PYTHONPATH": str(REPO / "src")}
    )
    assert result.returncode == -signal.SIGKILL
    assert not out.exists()
    leftovers = atomic.partials_of(out)
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the kill hit a write in progress
    # The next write of the same output cleans up and completes.
    write_jsonl([{"id": 1}], out)
    assert read_jsonl(out) == [{"id": 1}]
    assert atomic.partials_of(out) == []


def test_an_error_during_a_write_keeps_the_old_output_and_no_partial(tmp_path):
    out = tmp_path / "table.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.atomic_path(out) as temp:
        temp.write_text("half")
        raise RuntimeError("job failed")
    assert out.read_text() == "old\n"
    assert atomic.partials_of(out) == []


def test_a_folder_appears_whole(tmp_path):
    out = tmp_path / "adapter"
    (out).mkdir()
    (out / "stale.bin").write_text("from an earlier run")
    with atomic.atomic_path(out) as temp:
        temp.mkdir()
        (temp / "adapter_model.safetensors").write_text("weights")
        assert not (out / "adapter_model.safetensors").exists()
    assert sorted(p.name for p in out.iterdir()) == ["adapter_model.safetensors"]


def test_temporary_name_keeps_the_extension(tmp_path):
    with atomic.atomic_path(tmp_path / "ngram.joblib") as temp:
        assert temp.name.endswith(".ngram.joblib") and temp.name.startswith(".partial-")
        temp.write_text("{}")
    atomic.write_json(tmp_path / "summary.json", {"a": "é"})
    assert json.loads((tmp_path / "summary.json").read_text(encoding="utf-8")) == {"a": "é"}


def test_writing_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError), atomic.atomic_path(tmp_path / "out.txt"):
        pass
    assert not (tmp_path / "out.txt").exists()
