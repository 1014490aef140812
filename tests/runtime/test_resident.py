"""The resident base model (dpo_study.runtime.resident): reused within a worker, always as freshly loaded."""

import pytest
import torch

from conftest import default_settings
from dpo_study.config.settings import ModelSettings
from dpo_study.runtime import modeling, resident

SETTINGS = default_settings(ModelSettings)


@pytest.fixture
def residency(monkeypatch):
    monkeypatch.setattr(resident, "_enabled", True)
    monkeypatch.setattr(resident, "_entry", None)
    monkeypatch.setattr(resident, "stats", {"loads": 0, "reuses": 0, "evictions": 0})


def load(tiny_model):
    return modeling.load_base(modeling.read_manifest(tiny_model), SETTINGS)


def outputs(model):
    ids = torch.arange(1, 9)[None]
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_outside_a_worker_every_load_is_fresh(tiny_model):
    assert not resident.enabled()
    assert load(tiny_model) is not load(tiny_model)


def test_a_worker_reuses_the_model_and_training_leaves_no_trace(tiny_model, residency):
    from peft import LoraConfig, get_peft_model

    model = load(tiny_model)
    fresh = outputs(model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.train()
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    model.config.use_cache = False
    model.generation_config.pad_token_id = 7  # as TRL's trainer does
    with torch.no_grad():  # an adapter that changes the outputs
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.5)
    loss = peft_model(input_ids=torch.arange(1, 9)[None], labels=torch.arange(1, 9)[None]).loss
    loss.backward()
    assert not torch.equal(outputs(peft_model), fresh)
    del peft_model
    resident.reset()
    assert resident.stats["evictions"] == 0  # nothing left that the fingerprint sees
    again = load(tiny_model)
    assert again is model and resident.stats == {"loads": 1, "reuses": 1, "evictions": 0}
    assert torch.equal(outputs(again), fresh)
    assert not again.training and again.config.use_cache
    assert all(p.grad is None and p.requires_grad for p in again.parameters())


def test_a_job_that_changes_the_base_weights_evicts_the_model(tiny_model, residency):
    model = load(tiny_model)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    resident.reset()
    assert resident.stats["evictions"] == 1
    assert load(tiny_model) is not model  # loaded afresh


def test_another_load_plan_replaces_the_resident_model(tiny_model, residency):
    model = load(tiny_model)
    other = modeling.load_base(modeling.read_manifest(tiny_model), SETTINGS.replace(trust_remote_code=True))
    assert other is not model and resident.stats["loads"] == 2


def test_a_full_collection_after_a_job_only_where_cuda_has_started(residency, monkeypatch):
    """It walks every object of the process (~0.2 s a job); only cycles that hold GPU memory need it."""
    collections, emptied = [], []
    monkeypatch.setattr(resident.gc, "collect", lambda *args: collections.append(1) or 0)
    monkeypatch.setattr(resident.torch.cuda, "empty_cache", lambda: emptied.append(1))
    monkeypatch.setattr(resident.torch.cuda, "is_initialized", lambda: False)
    resident.reset()
    assert collections == [] and emptied == []
    monkeypatch.setattr(resident.torch.cuda, "is_initialized", lambda: True)
    resident.reset()
    assert collections == [1] and emptied == [1]


def test_a_compiled_training_job_leaves_no_trace_either(tiny_model, residency):
    """training.torch_compile_mode: the trainer compiles the adapter model; the stage then resets
    torch's compiler caches (they hold the job's adapter), and the resident model stays as loaded."""
    from peft import LoraConfig, get_peft_model

    model = load(tiny_model)
    fresh = outputs(model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.train()
    compiled = torch.compile(peft_model)  # as transformers' Trainer does with torch_compile
    compiled(input_ids=torch.arange(1, 9)[None], labels=torch.arange(1, 9)[None]).loss.backward()
    torch._dynamo.reset()
    del compiled, peft_model
    resident.reset()
    again = load(tiny_model)
    assert again is model and resident.stats["evictions"] == 0
    assert torch.equal(outputs(again), fresh)
