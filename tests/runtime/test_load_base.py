"""One owner of the study's base model: training, generation, the implicit reward and the llm judge
ask modeling.load_base for the same load plan (on a GPU, the recipe's 4-bit or bf16 for all four).

The machine is a CPU: these tests make torch report a GPU of 80 GiB and stop each stage where it
loads the base model, recording the plan it asked for.
"""

import pytest
import torch
from safetensors.torch import save_file

from conftest import demo_config, load_demo_study
from dpo_study.config.settings import ModelSettings
from dpo_study.runtime import modeling, plans as load_plans, runner
from dpo_study.stages.data import write_jsonl
from dpo_study.stages.generate import generate_responses
from dpo_study.stages.judge import make_judge
from dpo_study.stages.reward import implicit_rewards
from dpo_study.stages.train import train_adapter


class Loaded(Exception):
    """Raised instead of loading: the stage got as far as asking for the base model."""


@pytest.fixture
def plans(monkeypatch):
    asked = []

    def record(plan):
        asked.append(plan)
        raise Loaded

    monkeypatch.setattr(modeling, "load_planned", record)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(load_plans, "gpu_memory_bytes", lambda: 80 * 2**30)
    monkeypatch.setattr(load_plans, "unsloth_installed", lambda: False)
    monkeypatch.setattr(load_plans, "bitsandbytes_installed", lambda: True)
    return asked


def study_with(recipe: str):
    config = demo_config()
    config["training"] = {**config["training"], "recipe": recipe}
    config["model"] = {**config["model"], "load_in_4bit": None}  # the recipe decides
    return load_demo_study(config)


def stage_plans(study, manifest: str, tmp_path, asked: list) -> dict:
    """The load plan each of the four model-loading stages asks for (their inputs are checked first, so
    they are complete)."""
    out = {}
    write_jsonl([{"id": i, "prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
                  "rejected": [{"role": "assistant", "content": "b"}]}
                 for i in range(study.experiments[0].params["data_size"])], tmp_path / "pairs.jsonl")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter/adapter_config.json").write_text("{}")
    save_file({"lora_A": torch.zeros(2, 2)}, str(tmp_path / "adapter/adapter_model.safetensors"))
    for name in ("a.jsonl", "b.jsonl"):
        write_jsonl([{"id": "1", "prompt": "q", "response": "r"}], tmp_path / name)
    calls = {
        "training": lambda: train_adapter(
            manifest=manifest, pairs=str(tmp_path / "pairs.jsonl"), adapter=str(tmp_path / "adapter"),
            train_log=str(tmp_path / "log.csv"), summary=str(tmp_path / "summary.json"),
            checkpoints=str(tmp_path / "checkpoints"), experiment=study.experiment_params(study.experiments[0].key),
            training=study.training_settings, model_settings=study.model_settings),
        "generation": lambda: generate_responses(
            manifest=manifest, prompts=str(tmp_path / "prompts.jsonl"), responses=str(tmp_path / "r.jsonl"),
            generation=study.generation_settings, model_settings=study.model_settings),
        "reward": lambda: implicit_rewards(
            manifest=manifest, adapter=str(tmp_path / "adapter"), aligned_responses=str(tmp_path / "a.jsonl"),
            base_responses=str(tmp_path / "b.jsonl"), rewards=str(tmp_path / "rewards.csv"), beta=0.1,
            model_settings=study.model_settings),
        "judge": lambda: make_judge("llm", study.judge_settings("llm"), manifest=manifest).probabilities(
            ["It is fine."], ["Is it fine?"]),
    }
    for stage, call in calls.items():
        with pytest.raises(Loaded):
            call()
        out[stage] = asked[-1]
    return out


@pytest.mark.parametrize(("recipe", "in_4bit"), [("homework", True), ("fast", False)])
def test_every_stage_loads_the_base_the_training_used(tiny_model, tmp_path, plans, recipe, in_4bit):
    study = study_with(recipe)
    assert study.judge_runs_model("llm")
    by_stage = stage_plans(study, str(tiny_model), tmp_path, plans)
    assert len(set(by_stage.values())) == 1, by_stage
    plan = by_stage["training"]
    assert plan.device == "cuda" and plan.load_in_4bit is in_4bit and plan.dtype == torch.bfloat16


def test_explicit_precision_wins_and_cpu_never_quantizes(tiny_model, monkeypatch):
    manifest = modeling.read_manifest(tiny_model)
    settings = ModelSettings(trust_remote_code=False, load_in_4bit=None, max_seq_length=512, recipe="homework")
    cpu = load_plans.load_plan(manifest, settings)
    assert (cpu.device, cpu.load_in_4bit, cpu.dtype) == ("cpu", False, torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(load_plans, "gpu_memory_bytes", lambda: 80 * 2**30)
    assert load_plans.load_plan(manifest, settings).load_in_4bit is True
    assert load_plans.load_plan(manifest, settings.replace(load_in_4bit=False)).load_in_4bit is False


@pytest.mark.parametrize("recipe", ["homework", "fast"])
def test_a_training_job_plans_once_and_its_stage_loads_by_that_plan(tiny_model, tmp_path, plans, monkeypatch,
                                                                     recipe):
    """The runner plans the job (Unsloth or not, the precision, the batch split) before the stage's
    module loads; the stage takes that plan, only the batch split planned again for its pairs' lengths
    on a GPU, and loads the base by it."""
    study = study_with(recipe)
    counts = {"plan_for_job": 0, "load_plan": 0}

    def counted(name):
        original = getattr(load_plans, name)

        def wrapper(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(load_plans, name, wrapper)

    for name in counts:
        counted(name)
    write_jsonl([{"id": i, "prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
                  "rejected": [{"role": "assistant", "content": "b"}]}
                 for i in range(study.experiments[0].params["data_size"])], tmp_path / "pairs.jsonl")
    key = study.experiments[0].key
    kwargs = {  # as the rule's named input, output and params carry them (plain values)
        "manifest": str(tiny_model), "pairs": str(tmp_path / "pairs.jsonl"), "adapter": str(tmp_path / "adapter"),
        "train_log": str(tmp_path / "log.csv"), "summary": str(tmp_path / "summary.json"),
        "checkpoints": str(tmp_path / "checkpoints"), "experiment": study.experiment_params(key).to_dict(),
        "training": study.training_settings.to_dict(), "model_settings": study.model_settings.to_dict(),
        "threads": 1,
    }
    with pytest.raises(Loaded):
        runner.run_stage("dpo_study.stages.train:train_adapter", kwargs, str(tmp_path / "job.log"), plan_here=True)
    assert counts == {"plan_for_job": 2, "load_plan": 0}  # the runner's plan, the stage's batch split
    job = runner.job_plan(kwargs)
    assert plans == [job.load] and job.load.load_in_4bit is (recipe == "homework")
    assert "Loaded" in (tmp_path / "job.log").read_text()  # the stage's traceback is in the job's log
