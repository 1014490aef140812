"""Backend, precision and batch-split selection (backends.py), on the CPU with the machine passed in."""

import re
import subprocess
import sys

import pytest

from conftest import REPO, default_settings
from dpo_study.config.settings import ModelSettings, TrainingSettings
from dpo_study.runtime import backends, memory, plans
from dpo_study.runtime.memory import ModelShape
from dpo_study.runtime.plans import plan_training
from dpo_study.config.recipes import BackendError

GIB = 2**30
# Llama-3-8B's shape: 8.03B parameters, of which 2 x 525M in the embedding and the LM head.
LLAMA3_8B = ModelShape(params=8_030_261_248, embedding_params=1_050_673_152, hidden_size=4096,
                       intermediate_size=14336, num_layers=32, vocab_size=128_256)
# The schema's defaults: recipe fast, backend auto, the batch split, optimizer etc. left to the recipe.
MODEL = default_settings(ModelSettings)
TRAINING = default_settings(TrainingSettings)


def plan(training=None, model=None, *, gpu_gib=None, unsloth=True, bnb=True, sequence_length=None):
    return plan_training(
        TRAINING.replace(**(training or {})), MODEL.replace(**(model or {})),
        device="cuda" if gpu_gib else "cpu", gpu_bytes=gpu_gib * GIB if gpu_gib else None,
        shape=LLAMA3_8B if gpu_gib else None, unsloth_available=unsloth, bitsandbytes_available=bnb,
        sequence_length=sequence_length,
    )


def test_fast_on_a_large_gpu_is_bf16_one_micro_batch_without_checkpointing():
    p = plan(gpu_gib=139)
    assert (p.backend, p.load_in_4bit) == ("trl", False)
    assert (p.per_device_train_batch_size, p.gradient_accumulation_steps) == (8, 1)
    assert not p.gradient_checkpointing and p.optim == "adamw_torch_fused" and p.precompute_ref_logps
    assert p.estimated_peak_gib < 0.9 * 139


def test_fast_keeps_the_effective_batch_and_trades_micro_batch_then_checkpointing_for_memory():
    roomy, tight = plan(gpu_gib=80), plan(gpu_gib=24)
    for p in (roomy, tight):
        assert p.per_device_train_batch_size * p.gradient_accumulation_steps == 8
        assert not p.load_in_4bit
    assert roomy.per_device_train_batch_size < 8 and not roomy.gradient_checkpointing
    assert tight.gradient_checkpointing
    assert tight.estimated_peak_gib <= 0.9 * 24 - 3


def test_the_batch_split_follows_the_pairs_longest_sequence_not_max_seq_length():
    # The homework's pairs are under 200 tokens: on an 80-GB card one micro-batch of 8 pairs fits.
    padded, short = plan(gpu_gib=80), plan(gpu_gib=80, sequence_length=200)
    assert padded.per_device_train_batch_size < 8
    assert (short.per_device_train_batch_size, short.gradient_accumulation_steps) == (8, 1)
    assert short.estimated_peak_gib < padded.estimated_peak_gib
    assert plan(gpu_gib=80, sequence_length=4096) == padded  # never above max_seq_length (TRL cuts there)
    # On a 24-GB card padded pairs need checkpointing; short ones train without (a third less compute).
    assert plan(gpu_gib=24).gradient_checkpointing and not plan(gpu_gib=24, sequence_length=200).gradient_checkpointing


def test_fast_falls_back_to_4bit_when_bf16_cannot_train_and_prefers_unsloth_for_it():
    assert plan(gpu_gib=16).load_in_4bit
    assert plan(gpu_gib=16).backend == "unsloth"
    assert plan(gpu_gib=16, unsloth=False).backend == "trl"
    with pytest.raises(BackendError, match="model.load_in_4bit"):
        plan(gpu_gib=16, unsloth=False, bnb=False)


def test_homework_recipe_is_the_notebook_on_any_gpu():
    p = plan({"recipe": "homework"}, gpu_gib=139)
    assert (p.backend, p.load_in_4bit, p.per_device_train_batch_size, p.gradient_accumulation_steps) == (
        "unsloth", True, 2, 4)
    assert p.gradient_checkpointing and p.optim == "paged_adamw_8bit" and not p.precompute_ref_logps
    assert plan({"recipe": "homework"}, gpu_gib=139, unsloth=False).backend == "trl"


def test_explicit_settings_win_over_the_recipe():
    p = plan({"per_device_train_batch_size": 4, "optim": "adamw_torch", "gradient_checkpointing": True},
             {"load_in_4bit": True}, gpu_gib=139)
    assert (p.per_device_train_batch_size, p.gradient_accumulation_steps) == (4, 2)
    assert (p.optim, p.gradient_checkpointing, p.load_in_4bit) == ("adamw_torch", True, True)
    p = plan({"recipe": "homework", "backend": "trl"}, {"load_in_4bit": False}, gpu_gib=139)
    assert (p.backend, p.load_in_4bit, p.per_device_train_batch_size) == ("trl", False, 2)
    p = plan({"gradient_accumulation_steps": 2}, gpu_gib=139)
    assert (p.per_device_train_batch_size, p.gradient_accumulation_steps) == (4, 2)
    p = plan({"per_device_train_batch_size": 3, "gradient_accumulation_steps": 3}, gpu_gib=139)
    assert (p.per_device_train_batch_size, p.gradient_accumulation_steps) == (3, 3)


def test_cpu_plan_uses_trl_full_precision_and_the_cpu_optimizer():
    p = plan()
    assert (p.backend, p.device, p.load_in_4bit, p.optim, p.gradient_checkpointing) == (
        "trl", "cpu", False, "adamw_torch", False)
    assert (p.per_device_train_batch_size, p.gradient_accumulation_steps) == (8, 1)
    assert plan({"recipe": "homework"}).per_device_train_batch_size == 2


def test_unusable_backend_requests_name_the_field():
    with pytest.raises(BackendError, match="training.backend: unsloth needs a CUDA GPU"):
        plan({"backend": "unsloth"})
    with pytest.raises(BackendError, match="training.backend: unsloth is not installed"):
        plan({"backend": "unsloth"}, gpu_gib=139, unsloth=False)
    with pytest.raises(BackendError, match="training.per_device_train_batch_size: 3"):
        plan({"per_device_train_batch_size": 3})


def test_plan_for_job_reads_the_machine(monkeypatch, tmp_path):
    monkeypatch.setattr(plans.torch.cuda, "is_available", lambda: False)
    p = plans.plan_for_job({"path": str(tmp_path)}, TRAINING.replace(backend="auto"), MODEL)
    assert (p.device, p.backend) == ("cpu", "trl")


def test_model_shape_counts_parameters_from_the_safetensors_headers(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path)
    shape = memory.model_shape(tmp_path)
    assert shape.params == model.num_parameters()
    assert shape.embedding_params == 2 * 300 * 32
    assert (shape.hidden_size, shape.intermediate_size, shape.num_layers) == (32, 64, 2)


def test_unsloth_job_imports_unsloth_before_the_stage_module(monkeypatch, tmp_path):
    """A job that plans Unsloth imports it before its stage module (lazily imported by name) loads transformers."""
    from dpo_study.runtime import runner, smk

    calls = []
    monkeypatch.setattr(plans.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(plans, "plan_for_job", lambda *a: plan({"recipe": "homework"}, gpu_gib=139))
    monkeypatch.setattr(backends, "import_unsloth", lambda: calls.append("unsloth"))
    monkeypatch.setattr(runner, "resolve", lambda stage: calls.append(stage) or (lambda **kwargs: None))
    manifest = tmp_path / "model.json"
    manifest.write_text('{"path": "x"}')
    # As a rule's params carry them: plain values.
    kwargs = {"manifest": str(manifest), "training": TRAINING.to_dict(), "model_settings": MODEL.to_dict()}
    smk.run_here("dpo_study.stages.train:train_adapter", kwargs, str(tmp_path / "log"), gpu_job=True)
    assert calls == ["unsloth", "dpo_study.stages.train:train_adapter"]
    monkeypatch.setattr(plans, "plan_for_job", lambda *a: plan(gpu_gib=139))
    smk.run_here("dpo_study.stages.train:train_adapter", kwargs, str(tmp_path / "log"), gpu_job=True)
    assert calls == ["unsloth", "dpo_study.stages.train:train_adapter", "dpo_study.stages.train:train_adapter"]


def test_a_job_that_hands_its_stage_to_the_worker_loads_no_torch():
    """The job's side stays thin: the bridge and the worker client import neither torch nor transformers."""
    code = ("import sys; import dpo_study.runtime.gpus, dpo_study.runtime.smk, dpo_study.runtime.worker; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO / "src")})
    assert result.stdout.strip() == "[]"


def test_every_workflow_script_calls_one_existing_stage_by_name():
    import importlib

    for script in sorted((REPO / "workflow/scripts").glob("*.py")):
        lines = [line for line in script.read_text().splitlines() if line.strip()]
        assert lines[0] == "from dpo_study.runtime.smk import call", script.name
        match = re.fullmatch(r'call\("([\w.]+):(\w+)", snakemake\)  # noqa: F821 \(set by Snakemake\)', lines[1])
        assert match and len(lines) == 2, script.name
        assert callable(getattr(importlib.import_module(match[1]), match[2])), script.name


def test_gpu_jobs_get_growable_allocator_segments_unless_the_user_chose(monkeypatch):
    from dpo_study.runtime import smk

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    smk.claim_gpu()
    assert backends.os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    smk.claim_gpu()
    assert backends.os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"


@pytest.mark.parametrize("capability, dtype, precision", [((7, 5), "float16", "fp16"), ((8, 0), "bfloat16", "bf16"),
                                                          ((9, 0), "bfloat16", "bf16")])
def test_a_gpu_without_bf16_gets_an_fp16_plan(monkeypatch, tmp_path, capability, dtype, precision):
    """The T4 of Colab and Kaggle (compute capability 7.5) has no bf16: fp16 compute with loss scaling."""
    import torch

    from dpo_study.runtime import modeling, plans

    from dpo_study.stages import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(plans, "gpu_capability", lambda: capability)
    monkeypatch.setattr(plans, "gpu_memory_bytes", lambda: 15 * GIB)
    monkeypatch.setattr(plans, "model_shape", lambda path: LLAMA3_8B)
    monkeypatch.setattr(plans, "bitsandbytes_installed", lambda: True)
    monkeypatch.setattr(plans, "unsloth_installed", lambda: False)
    assert plans.compute_dtype() == getattr(torch, dtype)
    four_bit = plans.LoadPlan(str(tmp_path), "cuda", load_in_4bit=True, trust_remote_code=False)
    assert four_bit.dtype == getattr(torch, dtype)
    assert modeling.quantization_config(four_bit).bnb_4bit_compute_dtype == getattr(torch, dtype)
    job_plan = plans.plan_for_job({"path": str(tmp_path)}, TRAINING.replace(recipe="homework"), MODEL)
    assert job_plan.precision == precision and job_plan.load_in_4bit
    flags = train.precision_flags(job_plan.precision)
    assert flags == {"bf16": precision == "bf16", "fp16": precision == "fp16"}
    assert plan().precision == "fp32"  # the CPU
