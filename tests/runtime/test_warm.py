"""Warm start (dpo_study.runtime.warm): the worker the first GPU job needs, loaded before that job comes."""

import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO
from dpo_study.config.settings import ModelSettings
from dpo_study.runtime import gpus, warm, worker

SETTINGS = ModelSettings(trust_remote_code=False, load_in_4bit=False, max_seq_length=512, recipe="fast").to_dict()

STAGES = '''
from dpo_study.config.model import read_manifest
from dpo_study.runtime.modeling import load_base
from dpo_study.config.settings import ModelSettings

def load(out, manifest, model_settings: ModelSettings):
    load_base(read_manifest(manifest), model_settings)
    open(out, "w").write("loaded")
'''


class Named(dict):
    """A Snakemake job's named input or params, as far as warm start reads them."""


def job(rule, gpu=1, **params):
    inputs = Named(manifest="results/model.json", pairs="pairs.jsonl") if rule != "tables" else Named(csv="a.csv")
    return SimpleNamespace(rule=rule, resources={"gpu": gpu}, input=inputs, params=Named(params))


def test_the_training_job_decides_what_is_warmed_and_a_run_without_gpu_jobs_warms_nothing():
    generate, train = job("generate", model_settings=SETTINGS), job("train", model_settings=SETTINGS, training={"x": 1})
    assert warm.pending_gpu_kwargs([generate, train]) == {"manifest": "results/model.json",
                                                          "model_settings": SETTINGS, "training": {"x": 1}}
    assert warm.pending_gpu_kwargs([generate]) == {"manifest": "results/model.json", "model_settings": SETTINGS}
    assert warm.pending_gpu_kwargs([job("tables", gpu=0), job("generate", gpu=0)]) is None


@pytest.mark.parametrize("kwargs, software, local", [
    (None, {}, True),  # no GPU job in the run
    ({"manifest": "m.json"}, {"gpu_worker": "off"}, True),
    ({"manifest": "m.json"}, {"gpu_worker": "auto"}, False),  # a cluster executor: each job its own node
])
def test_no_warm_start_without_a_worker_to_warm(kwargs, software, local, tmp_path, monkeypatch):
    monkeypatch.setenv(gpus.LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    assert warm.warm_start(kwargs, software, local) is False
    assert not (tmp_path / "locks/workers" / warm.LOG_NAME).exists()


def test_a_run_that_ends_before_its_manifest_exists_warms_nothing(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert "nothing warmed" in warm.warm({"manifest": str(tmp_path / "none.json")}, 60, dead.pid)


def test_the_first_job_finds_the_base_model_loaded(tiny_model, tmp_path, monkeypatch):
    (tmp_path / "warm_test_stages.py").write_text(STAGES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO / "src")]))
    monkeypatch.setenv(gpus.LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        kwargs = {"manifest": str(tiny_model), "model_settings": SETTINGS}
        said = warm.warm(kwargs, 60, os.getpid())
        assert "warmed in" in said, said
        result = worker.run_stage("warm_test_stages:load", {"out": str(tmp_path / "out"), **kwargs},
                                  str(tmp_path / "job.log"), None)
        assert result["job"] == 1  # the warm-up was no job: this one is the worker's first
        assert "already loaded in this worker: reused" in (tmp_path / "job.log").read_text()
        assert len(worker.workers()) == 1  # the job found the warmed worker: no second one
    finally:
        for info in worker.workers(tmp_path / "locks/workers"):
            os.kill(info["pid"], signal.SIGKILL)

