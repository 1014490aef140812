"""Training stops on numerical faults with the step, and a killed training resumes where it was."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import REPO, default_settings
from dpo_study.config.settings import ExperimentParams, ModelSettings, TrainingSettings
from dpo_study.stages.data import build_pairs, write_jsonl
from dpo_study.config.data_files import load_rows
from dpo_study.stages.train import train_adapter
from dpo_study.stages.train_guards import FINGERPRINT_FILE, NoFinalCheckpoint, NumericalGuard, TrainingFault, resume_point


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ({"loss": float("nan"), "grad_norm": 0.1}, "step 7 of 21: the training loss is nan"),
        ({"loss": float("inf"), "grad_norm": 0.1}, "step 7 of 21: the training loss is inf"),
        ({"loss": 0.7, "grad_norm": float("nan")}, "step 7 of 21: the gradient norm is nan"),
        ({"loss": 0.7, "grad_norm": 5e4}, "step 7 of 21: the gradient norm 5e+04 exceeds training.stop_grad_norm = 10000"),
    ],
)
def test_guard_stops_at_a_numerical_fault(logs, expected):
    state = SimpleNamespace(global_step=7, max_steps=21)
    with pytest.raises(TrainingFault, match=re.escape(expected)):
        NumericalGuard(1e4).on_log(None, state, None, logs=logs)


def test_guard_lets_healthy_steps_and_summaries_pass():
    state = SimpleNamespace(global_step=7, max_steps=21)
    NumericalGuard(1e4).on_log(None, state, None, logs={"loss": 0.69, "grad_norm": 3.0})
    NumericalGuard(1e4).on_log(None, state, None, logs={"train_runtime": 1.0, "train_loss": 0.7})


def make_checkpoint(folder, step, complete=True):
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_model.safetensors").write_text("weights")
    if complete:
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return checkpoint


def test_resume_point_is_the_last_complete_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    assert resume_point(folder, "abc") is None
    assert (folder / FINGERPRINT_FILE).read_text().strip() == "abc"
    make_checkpoint(folder, 4)
    make_checkpoint(folder, 6, complete=False)  # killed while it was being saved
    truncated = make_checkpoint(folder, 8)
    (truncated / "trainer_state.json").write_text('{"global_st')
    assert resume_point(folder, "abc") == str(folder / "checkpoint-4")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-4", FINGERPRINT_FILE]


def test_checkpoints_of_other_settings_are_discarded(tmp_path):
    folder = tmp_path / "checkpoints"
    resume_point(folder, "abc")
    make_checkpoint(folder, 4)
    assert resume_point(folder, "other settings") is None
    assert sorted(p.name for p in folder.iterdir()) == [FINGERPRINT_FILE]


def test_checkpoints_are_saved_every_checkpoint_steps_but_not_after_the_last_step(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback

    args = TrainingArguments(output_dir=str(tmp_path), save_strategy="steps", save_steps=4, report_to=[], use_cpu=True)
    handler = CallbackHandler([DefaultFlowCallback, NoFinalCheckpoint()], None, None, None, None)
    state = TrainerState(max_steps=10, save_steps=4)
    saved = []
    for step in range(1, 11):
        state.global_step = step
        if handler.on_step_end(args, state, TrainerControl()).should_save:
            saved.append(step)
    assert saved == [4, 8]  # without the callback the Trainer also saves at step 10
    handler.remove_callback(NoFinalCheckpoint)
    assert handler.on_step_end(args, state, TrainerControl()).should_save


# ---- real training on the tiny model ----------------------------------------------------


def training_settings(**overrides) -> TrainingSettings:
    return default_settings(TrainingSettings, max_length=256, gradient_checkpointing=False,
                            per_device_train_batch_size=1, gradient_accumulation_steps=1, **overrides)


EXPERIMENT = ExperimentParams(num_epoch=2, data_size=12, support_ratio=0.5, beta=0.1, lora_r=4, lora_alpha=8,
                              learning_rate=2e-3, strategy="swap", seed=42)
MODEL_SETTINGS = default_settings(ModelSettings, load_in_4bit=False)


def run_paths(folder, pairs_file):
    folder.mkdir(parents=True, exist_ok=True)
    return {"pairs": str(pairs_file), "adapter": str(folder / "adapter"), "train_log": str(folder / "train_log.csv"),
            "summary": str(folder / "train_summary.json"), "checkpoints": str(folder / "checkpoints")}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    write_jsonl(build_pairs(load_rows(REPO / "data/train.json", "train"), EXPERIMENT.data_size, 0.5), path)
    return path


def outputs_absent(paths) -> bool:
    return not any(os.path.exists(paths[k]) for k in ("adapter", "train_log", "summary"))


@pytest.mark.slow
def test_nan_loss_stops_training_and_names_the_step(tmp_path, tiny_model, pairs_file):
    manifest = json.loads(tiny_model.read_text())
    broken = tmp_path / "nan_model"
    broken.mkdir()
    for item in (tiny_model.parent / "model").iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = load_file(broken / "model.safetensors")
    norm = next(name for name in weights if name.endswith("norm.weight"))
    weights[norm] = torch.full_like(weights[norm], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    model = tmp_path / "nan_model.json"
    model.write_text(json.dumps({**manifest, "path": str(broken)}))
    paths = run_paths(tmp_path / "run", pairs_file)
    with pytest.raises(TrainingFault, match=r"training stopped at step 1 of \d+: the training loss is nan"):
        train_adapter(manifest=str(model), experiment=EXPERIMENT, training=training_settings(),
                      model_settings=MODEL_SETTINGS, **paths)
    assert outputs_absent(paths)


@pytest.mark.slow
def test_exploding_gradient_norm_stops_training(tmp_path, tiny_model, pairs_file):
    paths = run_paths(tmp_path / "run", pairs_file)
    with pytest.raises(TrainingFault, match=r"step 1 of \d+: the gradient norm \S+ exceeds training.stop_grad_norm = 1e-09"):
        train_adapter(manifest=str(tiny_model), experiment=EXPERIMENT, training=training_settings(stop_grad_norm=1e-9),
                      model_settings=MODEL_SETTINGS, **paths)
    assert outputs_absent(paths)


# Trains one run in a process of its own, a little slowed down per step so that the test can
# kill it between two checkpoints.
SLOW_TRAINER = """
import json, sys, time
from dpo_study.stages import train_guards
from dpo_study.runtime.runner import stage_arguments
from dpo_study.stages.train import train_adapter

on_log = train_guards.NumericalGuard.on_log
def slow_on_log(self, *args, **kwargs):
    time.sleep(0.3)
    return on_log(self, *args, **kwargs)
train_guards.NumericalGuard.on_log = slow_on_log
train_adapter(**stage_arguments(train_adapter, json.loads(sys.argv[1])))  # settings as plain values, as a job's
"""


def adapter_weights(adapter):
    return load_file(os.path.join(adapter, "adapter_model.safetensors"))


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint_and_ends_where_an_uninterrupted_one_does(
    tmp_path, tiny_model, pairs_file
):
    training = training_settings(checkpoint_steps=4)
    common = {"manifest": str(tiny_model), "experiment": EXPERIMENT, "training": training, "model_settings": MODEL_SETTINGS}
    whole = run_paths(tmp_path / "whole", pairs_file)
    train_adapter(**common, **whole)
    total_steps = json.loads(open(whole["summary"]).read())["steps"]

    killed = run_paths(tmp_path / "killed", pairs_file)
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_TRAINER,
         json.dumps({**{k: getattr(v, "to_dict", lambda v=v: v)() for k, v in common.items()}, **killed})],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    state = os.path.join(killed["checkpoints"], "checkpoint-8", "trainer_state.json")
    deadline = time.monotonic() + 600
    while not os.path.exists(state) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "training ended before it could be killed"
    assert outputs_absent(killed)

    train_adapter(**common, **killed)
    summary = json.loads(open(killed["summary"]).read())
    assert summary["resumed_from_step"] >= 8 and summary["steps"] == total_steps
    whole_summary = json.loads(open(whole["summary"]).read())
    assert summary["train_loss"] == pytest.approx(whole_summary["train_loss"])  # over all steps, not just the resumed ones
    log = pd.read_csv(killed["train_log"])
    assert list(log["step"]) == list(range(1, total_steps + 1))  # the steps before the kill are kept
    assert not os.path.exists(killed["checkpoints"])
    resumed, uninterrupted = adapter_weights(killed["adapter"]), adapter_weights(whole["adapter"])
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        torch.testing.assert_close(resumed[name], uninterrupted[name])


def test_a_compiled_training_job_writes_its_adapter_and_keeps_no_compiled_code(tmp_path, tiny_model, monkeypatch):
    """training.torch_compile_mode: the step is compiled, and the job clears the compiler's caches after it
    (they hold the job's adapter; a resident worker's next job compiles its own)."""
    from torch._dynamo import convert_frame
    from torch._dynamo.utils import counters

    from dpo_study.stages import train

    def eager_backend(*args, **kwargs):  # dynamo's capture without inductor's code generation (45 s cold here)
        config = real_dpo_config(*args, **kwargs)
        config.torch_compile_backend = "eager"
        return config

    real_dpo_config = train.dpo_config
    monkeypatch.setattr(train, "dpo_config", eager_backend)

    graphs = counters["stats"]["unique_graphs"]
    experiment = EXPERIMENT.replace(num_epoch=1, data_size=2)  # two steps: each compilation costs seconds
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(build_pairs(load_rows(REPO / "data/train.json", "train"), experiment.data_size, 0.5), pairs)
    paths = run_paths(tmp_path / "run", pairs)
    train_adapter(manifest=str(tiny_model), experiment=experiment,
                  training=training_settings(torch_compile_mode="default"),
                  model_settings=MODEL_SETTINGS, **paths)
    assert counters["stats"]["unique_graphs"] > graphs  # compiled
    assert not convert_frame.input_codes.seen  # and nothing of it kept
    assert json.loads(open(paths["summary"]).read())["steps"] == experiment.data_size and os.path.isdir(paths["adapter"])
