"""resolve_model: the manifest every other job reads, written by a job that imports no torch."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from dpo_study.config.errors import ConfigError
from dpo_study.stages.model_source import resolve_model


def test_a_local_folder_is_recorded_by_its_resolved_path(tiny_model, tmp_path, monkeypatch):
    folder = tiny_model.parent / "model"  # tiny_model is the manifest the demo build wrote beside it
    monkeypatch.chdir(folder.parent)
    manifest = tmp_path / "manifest.json"
    resolve_model(str(manifest), "model")  # a relative name, as a user may write it
    assert json.loads(manifest.read_text()) == {"name": "model", "path": str(folder.resolve())}


def test_a_folder_without_tokenizer_stops_here_and_writes_nothing(tiny_model, tmp_path):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model.parent / "model", folder, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens_map.json"))
    manifest = tmp_path / "manifest.json"
    with pytest.raises(ConfigError, match="model.name .*no-tokenizer.* has no tokenizer.json"):
        resolve_model(str(manifest), str(folder))
    assert not manifest.exists()


def test_offline_an_uncached_hub_id_fails_without_a_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    manifest = tmp_path / "manifest.json"
    with pytest.raises(Exception, match="(?i)local|offline|cache"):
        resolve_model(str(manifest), "nobody/no-such-model")
    assert not manifest.exists()


def test_the_job_imports_no_ml_library():
    """The job is the root of every real study's DAG and the warm start waits for it."""
    code = ("import sys; import dpo_study.runtime.smk, dpo_study.stages.model_source; "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"
