"""Whole studies through the snakemake command line, on a small demo model (a few minutes in all).

Same config and seed give identical tables; a study killed (SIGKILL) in the middle of training
leaves no output taken as complete and, rerun with --rerun-incomplete, resumes from its last
checkpoint and ends with the tables of an uninterrupted run; a Hub token in the environment
appears in no file of the study. The studies start from one build of the demo model (conftest:
small_demo_model, the slowest job); tests/stages/test_determinism.py shows that building it twice gives the same model.
"""

import os
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest

from conftest import HUB_TOKEN, REPO, SMALL_DEMO_MODEL
from dpo_study.stages.tables import TIMING_COLUMNS
from dpo_study.stages.train_guards import checkpoint_step
from snakemake_helpers import (reuse_outputs, scheduled_jobs, snakemake, snakemake_command, snakemake_env,
                               workdir_with_config)

pytestmark = pytest.mark.slow

SECRET = HUB_TOKEN  # in the environment of the demo model's build and of the first study
# 20 training steps with a checkpoint every 2.
STUDY = {
    "demo_model": SMALL_DEMO_MODEL,
    "training": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "loss_type": ["sigmoid", "sft"],
                 "gradient_checkpointing": False, "checkpoint_steps": 2},
    "defaults": {"num_epoch": 2, "data_size": 20, "support_ratio": 1, "learning_rate": 2.0e-3},
    "generation": {"max_new_tokens": 48},
    "experiments": [{"name": "ratio_1"}],
    "questions": [],
}


def tables(workdir):
    experiments = pd.read_csv(workdir / "results/tables/experiments.csv").drop(columns=TIMING_COLUMNS)
    responses = pd.read_csv(workdir / "results/tables/responses.csv")
    return experiments, responses


@pytest.fixture(scope="module")
def first_run(small_demo_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("first")
    config = workdir_with_config(workdir, STUDY)
    assert reuse_outputs(small_demo_model, workdir, config, only=("results/models/",))
    snakemake(workdir, config, env={"HF_TOKEN": SECRET})
    return workdir


def with_demo_model_of(first_run, workdir):
    """A fresh study folder holding only the first study's demo model (an up-to-date output there)."""
    shutil.copytree(first_run / "results/models", workdir / "results/models")
    return workdir_with_config(workdir, STUDY)


def test_tables_record_what_produced_them(first_run):
    experiments, _ = tables(first_run)
    row = experiments.iloc[0]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    expected_commit = head.stdout.strip() if head.returncode == 0 else "unknown (not a git checkout)"
    assert row["git_commit"].removesuffix("+dirty") == expected_commit
    assert len(row["config_hash"]) == 12 and row["transformers_version"] and row["torch_version"]


def test_finished_study_schedules_nothing(first_run):
    result = snakemake(first_run, first_run / "study.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_hub_token_is_never_written(first_run, small_demo_model):
    written = [p for folder in (first_run, small_demo_model) for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written) and any(p.name == "experiments.csv" for p in written)
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []


def complete_checkpoint(results):
    return any(checkpoint_step(c) for c in results.glob("demo-*/model-*/runs/training-*/*/checkpoints/checkpoint-*"))


def test_killed_study_resumes_training_and_ends_as_an_uninterrupted_one(first_run, tmp_path):
    config = with_demo_model_of(first_run, tmp_path)
    with open(tmp_path / "killed_run.log", "w") as log:
        # A session of its own: the kill takes Snakemake and its running jobs, as a lost node would.
        process = subprocess.Popen(snakemake_command(tmp_path, config), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=snakemake_env())
        deadline = time.monotonic() + 1200
        while not complete_checkpoint(tmp_path / "results") and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert complete_checkpoint(tmp_path / "results"), (tmp_path / "killed_run.log").read_text()[-3000:]
    run = next(tmp_path.glob("results/demo-*/model-*/runs/training-*/*"))
    assert not (run / "adapter").exists() and not (run / "train_summary.json").exists()

    snakemake(tmp_path, config, "--unlock")  # the killed Snakemake left its lock
    dry_run = snakemake(tmp_path, config, "-n", "--rerun-incomplete")
    assert scheduled_jobs(dry_run.stdout)["train_adapter"] == 1  # nothing of the killed job counts as done
    snakemake(tmp_path, config, "--rerun-incomplete")

    train_log = (tmp_path / "results/logs/train_adapter" / f"{run.name}.log").read_text()
    assert "resuming training from" in train_log
    summary = pd.read_json(run / "train_summary.json", typ="series")
    assert summary["resumed_from_step"] >= 2
    assert not (run / "checkpoints").exists()
    # Same config and seed, identical tables: the resumed study is a second run of the first one's
    # config, so this also shows that two runs agree (with real answers compared, not empty ones).
    assert tables(first_run)[1]["aligned_response"].str.len().gt(0).all()
    for resumed, uninterrupted in zip(tables(tmp_path), tables(first_run)):
        pd.testing.assert_frame_equal(resumed, uninterrupted)

