"""The resident worker through the snakemake command line, on a small demo model (CPU).

A demo study (two experiments: a second training on the model the first one left; all three
judges, the llm judge running the base model) gives the same tables with the worker and without
it, except timing columns; a worker killed in the middle of a study fails at most the job it was
running, the next job starts a new one, and the rerun ends with the same tables.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import SMALL_DEMO_MODEL
from dpo_study.runtime.gpus import LOCK_DIR_VARIABLE
from dpo_study.stages.tables import TIMING_COLUMNS
from snakemake_helpers import reuse_outputs, snakemake, snakemake_command, snakemake_env, workdir_with_config

pytestmark = pytest.mark.slow

STUDY = {
    "demo_model": SMALL_DEMO_MODEL,
    "training": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "loss_type": ["sigmoid", "sft"],
                 "gradient_checkpointing": False},
    "defaults": {"num_epoch": 1, "data_size": 12, "learning_rate": 2.0e-3},
    "generation": {"max_new_tokens": 32},
    "experiments": [{"name": "ratio_0", "support_ratio": 0}, {"name": "ratio_1", "support_ratio": 1}],
    "questions": [],
}


def config(workdir, gpu_worker):
    return workdir_with_config(workdir, {**STUDY, "software": {"env": "cpu", "gpu_worker": gpu_worker}})


def tables(workdir) -> dict:
    out = {}
    for path in sorted((workdir / "results/tables").glob("*.csv")):
        table = pd.read_csv(path)
        # git_commit records the code a run used (a commit during the test changes it), not a result.
        out[path.name] = table.drop(columns=[c for c in [*TIMING_COLUMNS, "git_commit"] if c in table.columns])
    return out


def worker_env(workdir) -> dict:
    return {LOCK_DIR_VARIABLE: str(workdir / "locks")}


def worker_starts(workdir) -> int:
    logs = list((workdir / "locks/workers").glob("*.log"))
    return sum(log.read_text().count("serves GPU jobs") for log in logs)


@pytest.fixture(scope="module")
def with_worker(small_demo_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("with_worker")
    study = config(workdir, "on")
    assert reuse_outputs(small_demo_model, workdir, study, only=("results/models/",))
    snakemake(workdir, study, env=worker_env(workdir))
    return workdir


def copy_demo_model(source: Path, workdir: Path) -> None:
    shutil.copytree(source / "results/models", workdir / "results/models")


def test_model_jobs_ran_in_one_worker_that_reused_the_model(with_worker):
    assert worker_starts(with_worker) == 1
    # Warm start (runtime/warm.py): the run's onstart warmed the one worker its jobs ran in (whether
    # the warm-up or the first job got there first is a race; tests/runtime/test_warm.py: the order).
    worker_log = next(p for p in (with_worker / "locks/workers").glob("*.log")
                      if "serves GPU jobs" in p.read_text()).read_text()
    assert "warmed in" in worker_log
    logs = "".join(p.read_text() for p in (with_worker / "results").rglob("*.log"))
    assert "in the resident worker no-gpu" in logs and "already loaded in this worker: reused" in logs
    assert "it will be loaded afresh" not in logs  # every job left the model as it found it


def test_report_side_jobs_ran_in_one_warm_cpu_worker(with_worker):
    """The measures, the tables' join, the report items and the findings: one process, not one each."""
    starts = sum(log.read_text().count("serves CPU-stage jobs") for log in (with_worker / "locks/workers").glob("*.log"))
    assert starts == 1
    for log in ["tables.log", "report/findings.log", "report/summary_table.log", "report/training_curves.log"]:
        assert "in the resident worker cpu" in (with_worker / "results/logs" / log).read_text(), log


def test_tables_are_the_same_with_and_without_the_worker(with_worker, tmp_path):
    copy_demo_model(with_worker, tmp_path)
    snakemake(tmp_path, config(tmp_path, "off"), env=worker_env(tmp_path))
    assert not (tmp_path / "locks/workers").exists()  # no worker ran
    with_, without = tables(with_worker), tables(tmp_path)
    assert set(with_) == set(without) and "responses.csv" in with_
    assert with_["responses.csv"]["aligned_response"].str.len().gt(0).all()
    for name in with_:
        pd.testing.assert_frame_equal(with_[name], without[name], obj=name)


def test_a_killed_worker_fails_only_its_job_and_the_rerun_ends_as_an_uninterrupted_study(with_worker, tmp_path):
    """The finished study's base model outputs and ratio_0's training kept: ratio_1's training and
    both experiments' answers, judgements and measures run again with the worker on, and the worker
    is killed once ratio_1's training job has finished: ratio_1's answers are model jobs still to come."""
    study = config(tmp_path, "on")
    runs = with_worker / "results"
    (ratio_0,) = runs.glob("demo-*/model-*/runs/training-*/*_support_ratio~0_*")
    keep = ("results/models/", "results/judge/", "results/prompts/", "results/pairs/",
            *(f"{p.relative_to(with_worker)}/" for p in runs.glob("demo-*/model-*/base")),
            *(f"{ratio_0.relative_to(with_worker)}/{name}" for name in ("adapter", "train_")))
    assert reuse_outputs(with_worker, tmp_path, study, only=keep)
    env = worker_env(tmp_path)
    with open(tmp_path / "run.log", "w") as log:
        process = subprocess.Popen(snakemake_command(tmp_path, study, "--keep-going"), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, env=snakemake_env(env))
        killed = None
        deadline = time.monotonic() + 1500
        while process.poll() is None and time.monotonic() < deadline:
            infos = [p for p in (tmp_path / "locks/workers").glob("*.json") if not p.name.startswith("cpu-")]
            trained = "(Rule: train_adapter)" in (tmp_path / "run.log").read_text()  # Snakemake's "Finished jobid"
            if killed is None and infos and trained:
                killed = json.loads(infos[0].read_text())["pid"]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        process.wait(timeout=60)
    assert killed is not None, (tmp_path / "run.log").read_text()[-3000:]
    assert worker_starts(tmp_path) >= 2  # the next model job started a new worker
    snakemake(tmp_path, study, env=env)  # whatever the kill failed is done now
    for name, table in tables(with_worker).items():
        pd.testing.assert_frame_equal(table, tables(tmp_path)[name], obj=name)
