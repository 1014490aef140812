"""Every exposed training, generation, model and experiment setting reaches what it configures: for each
field, the effective TRL / PEFT / transformers objects (or the project's own plan, guard or decoder)
are built with a non-default value, and the value must arrive. A field the libraries ignore or
override (as TRL's ``disable_dropout`` did to ``training.lora_dropout``) fails here, not in a
user's sweep. A schema field without an entry here fails too."""

import json

import pytest
import torch

from conftest import REPO
from dpo_study.config.settings import ExperimentParams, GenerationSettings, ModelSettings, TrainingSettings
from dpo_study.config.validation import schema_defaults
from dpo_study.runtime import plans
from dpo_study.stages import generate, train, train_guards

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
DEFAULTS = schema_defaults(SCHEMA)
EXPERIMENT = {**DEFAULTS["defaults"]}
GIB = 2**30


def built(tmp_path, monkeypatch, training=None, experiment=None, model=None, device="cpu"):
    """(DPOConfig, LoraConfig, plan, guard) of the default settings with the given fields changed, as
    train_adapter builds them on ``device``."""
    config = {"model": {**DEFAULTS["model"], **(model or {})}, "training": {**DEFAULTS["training"], **(training or {})}}
    training, model_settings = TrainingSettings.from_config(config), ModelSettings.from_config(config)
    experiment = ExperimentParams.from_dict({**EXPERIMENT, **(experiment or {})})
    plan = plans.plan_training(training, model_settings, device=device, gpu_bytes=80 * GIB, shape=None,
                               unsloth_available=False)
    resolved = plan.training_settings(training)
    monkeypatch.setattr(train, "device", lambda: device)
    # fp32 flags: a CPU cannot build bf16 arguments; the precision is the plan's own field.
    args = train.dpo_config(experiment, resolved, str(tmp_path / "out"), "fp32")
    return args, train.lora_config(experiment, resolved), plan, train_guards.NumericalGuard(resolved.stop_grad_norm)


def enum_value(value):
    return getattr(value, "value", value)


# Each field: (a non-default value, what it arrives as in (args, lora, plan, guard), the device to build on).
TRAINING = {
    "backend": ("trl", lambda a, lora, plan, g: plan.backend, "cuda"),
    "recipe": ("homework", lambda a, lora, plan, g: (plan.recipe, plan.optim == "paged_adamw_8bit") and plan.recipe, "cuda"),
    "per_device_train_batch_size": (4, lambda a, lora, p, g: a.per_device_train_batch_size, "cpu"),
    "gradient_accumulation_steps": (2, lambda a, lora, p, g: a.gradient_accumulation_steps, "cpu"),
    "warmup_ratio": (0.25, lambda a, lora, p, g: a.get_warmup_steps(100) / 100, "cpu"),
    "lr_scheduler_type": ("cosine", lambda a, lora, p, g: enum_value(a.lr_scheduler_type), "cpu"),
    "optim": ("adamw_torch", lambda a, lora, p, g: enum_value(a.optim), "cuda"),
    "cpu_optim": ("adafactor", lambda a, lora, p, g: enum_value(a.optim), "cpu"),
    "weight_decay": (0.05, lambda a, lora, p, g: a.weight_decay, "cpu"),
    # dpo_config's args switch TRL's dropout-off default off; test_lora_dropout_reaches_the_trained_model
    # checks the trained model itself.
    "lora_dropout": (0.3, lambda a, lora, p, g: (lora.lora_dropout if not a.disable_dropout else None), "cpu"),
    "target_modules": (["q_proj", "v_proj"], lambda a, lora, p, g: sorted(lora.target_modules), "cpu"),
    "loss_type": (["sigmoid", "sft"], lambda a, lora, p, g: list(a.loss_type), "cpu"),
    "loss_weights": ([1.0, 0.5], lambda a, lora, p, g: list(a.loss_weights), "cpu"),
    "gradient_checkpointing": (True, lambda a, lora, p, g: a.gradient_checkpointing, "cuda"),
    "precompute_ref_logps": (False, lambda a, lora, plan, g: plan.precompute_ref_logps, "cpu"),
    "use_liger_kernel": (True, lambda a, lora, p, g: a.use_liger_kernel, "cuda"),
    "torch_compile_mode": ("default", lambda a, lora, p, g: a.torch_compile and a.torch_compile_mode, "cpu"),
    "checkpoint_steps": (7, lambda a, lora, p, g: a.save_steps, "cpu"),
    "stop_grad_norm": (12.5, lambda a, lora, p, g: g.max_grad_norm, "cpu"),
}
# loss_weights needs its loss_type list beside it.
COMPANIONS = {"loss_weights": {"loss_type": ["sigmoid", "sft"]}}
EXPERIMENT_FIELDS = {
    "num_epoch": (5, lambda a, lora: a.num_train_epochs),
    "learning_rate": (0.003, lambda a, lora: a.learning_rate),
    "beta": (0.5, lambda a, lora: a.beta),
    "seed": (7, lambda a, lora: (a.seed, a.data_seed) == (7, 7) and a.seed),
    "lora_r": (8, lambda a, lora: lora.r),
    "lora_alpha": (32, lambda a, lora: lora.lora_alpha),
}
# Experiment parameters that shape the preference pairs, not a library object (tests/stages/test_pairs.py,
# tests/config/test_strategies.py check what each does to the pairs).
PAIR_FIELDS = {"data_size", "support_ratio", "strategy"}


def test_every_training_and_experiment_field_has_a_check():
    assert set(DEFAULTS["training"]) == set(TRAINING)
    assert set(DEFAULTS["defaults"]) == set(EXPERIMENT_FIELDS) | PAIR_FIELDS


@pytest.mark.parametrize("field", sorted(TRAINING))
def test_a_training_field_reaches_the_libraries(tmp_path, monkeypatch, field):
    value, observe, device = TRAINING[field]
    assert value != DEFAULTS["training"][field]
    args, lora, plan, guard = built(tmp_path, monkeypatch, {**COMPANIONS.get(field, {}), field: value}, device=device)
    assert observe(args, lora, plan, guard) == value


def test_liger_kernels_on_the_cpu_are_refused_naming_the_setting(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="training.use_liger_kernel: .*need a CUDA GPU"):
        built(tmp_path, monkeypatch, {"use_liger_kernel": True}, device="cpu")


def test_cuda_graphs_on_the_cpu_are_refused_naming_the_setting(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="training.torch_compile_mode: reduce-overhead .*needs a CUDA GPU"):
        built(tmp_path, monkeypatch, {"torch_compile_mode": "reduce-overhead"}, device="cpu")
    args = built(tmp_path, monkeypatch, {"torch_compile_mode": "reduce-overhead"}, device="cuda")[0]
    assert args.torch_compile_mode == "reduce-overhead"


@pytest.mark.parametrize("field", sorted(EXPERIMENT_FIELDS))
def test_an_experiment_parameter_reaches_the_libraries(tmp_path, monkeypatch, field):
    value, observe = EXPERIMENT_FIELDS[field]
    assert value != EXPERIMENT[field]
    args, lora, _, _ = built(tmp_path, monkeypatch, experiment={field: value})
    assert observe(args, lora) == value


MODEL = {
    "max_seq_length": (256, lambda args, load, train_plan: args.max_length),
    "load_in_4bit": (True, lambda args, load, train_plan: (train_plan.load_in_4bit, load.load_in_4bit) == (True, True)),
    "trust_remote_code": (True, lambda args, load, train_plan: load.trust_remote_code),
}


def test_every_model_field_has_a_check():
    assert set(DEFAULTS["model"]) == set(MODEL) | {"name"}  # name: tests/config/test_study.py (the manifest, the paths)


@pytest.mark.parametrize("field", sorted(MODEL))
def test_a_model_field_reaches_the_loader_and_trainer(tmp_path, monkeypatch, field):
    value, observe = MODEL[field]
    assert value != DEFAULTS["model"][field]
    monkeypatch.setattr(plans, "device", lambda: "cuda")
    monkeypatch.setattr(plans, "gpu_memory_bytes", lambda: 80 * GIB)
    monkeypatch.setattr(plans, "model_shape", lambda path: None)
    args, _, train_plan, _ = built(tmp_path, monkeypatch, model={field: value}, device="cuda")
    load = plans.load_plan({"path": "model"}, ModelSettings.from_config(
        {"model": {**DEFAULTS["model"], field: value}, "training": {"recipe": "fast"}}))
    assert observe(args, load, train_plan) is not False
    if field == "max_seq_length":
        assert args.max_length == value


GENERATION = {
    "max_new_tokens": (3, lambda kwargs, calls: kwargs["max_new_tokens"]),
    "do_sample": (True, lambda kwargs, calls: kwargs["do_sample"]),
    "temperature": (0.7, lambda kwargs, calls: kwargs["temperature"]),
    "top_p": (0.9, lambda kwargs, calls: kwargs["top_p"]),
    "batch_size": (2, lambda kwargs, calls: max(calls["batch"])),
    "decode": ("static", lambda kwargs, calls: calls["mode"]),
    "seed": (5, lambda kwargs, calls: calls["seed"]),
}
SAMPLING_ONLY = {"temperature", "top_p", "seed"}  # the parse refuses them with greedy decoding


def test_every_generation_field_has_a_check():
    assert set(DEFAULTS["generation"]) == set(GENERATION)


@pytest.mark.parametrize("field", sorted(GENERATION))
def test_a_generation_field_reaches_generate(monkeypatch, field):
    """generate_answers with a stand-in model: what reaches transformers' generate, the batches, the
    decode mode and the seed of the sampler."""
    value, observe = GENERATION[field]
    assert value != DEFAULTS["generation"][field]
    settings = {**DEFAULTS["generation"], field: value}
    if field in SAMPLING_ONLY:
        settings["do_sample"] = True
    settings = GenerationSettings.from_dict(settings)
    calls = {"batch": [], "mode": None, "seed": None, "kwargs": None}

    class Tokenizer:
        pad_token_id = 0

        def __call__(self, texts, **kwargs):
            calls["batch"].append(len(texts))
            return Encoded(len(texts))

        def decode(self, tokens, **kwargs):
            return "answer"

    class Encoded(dict):
        def __init__(self, n):
            super().__init__(input_ids=torch.ones(n, 2, dtype=torch.long), attention_mask=torch.ones(n, 2, dtype=torch.long))

        def to(self, device):
            return self

    class Model:
        device = torch.device("cpu")

        def eval(self):
            return self

        def generate(self, input_ids, attention_mask, eos_token_id, pad_token_id, **kwargs):
            calls["kwargs"] = kwargs
            return torch.cat([input_ids, torch.full((len(input_ids), 1), 9)], dim=1)

    def decode_mode(model, generation):
        calls["mode"] = generation.decode
        return "plain"

    monkeypatch.setattr(generate, "decode_mode", decode_mode)
    monkeypatch.setattr(generate, "end_of_turn_ids", lambda tokenizer, model: [9])
    monkeypatch.setattr(generate, "chat_text", lambda tokenizer, record: record["prompt"])
    monkeypatch.setattr(torch, "manual_seed", lambda seed: calls.__setitem__("seed", seed))
    records = [{"id": str(i), "prompt": f"q{i}", "system": "s"} for i in range(5)]
    generate.generate_answers(Model(), Tokenizer(), records, settings)
    assert observe(calls["kwargs"], calls) == value


# ---- lora_dropout in the trained model -------------------------------------------------------


def trainer_for(tiny_model, tmp_path, monkeypatch, lora_dropout: float, disable_dropout: bool | None = None):
    from datasets import Dataset
    from trl import DPOTrainer

    from dpo_study.runtime.modeling import load_base, load_tokenizer, read_manifest

    manifest = read_manifest(tiny_model)
    settings = ModelSettings.from_config({"model": {**DEFAULTS["model"], "trust_remote_code": False, "load_in_4bit": False},
                                          "training": {"recipe": "fast"}})
    monkeypatch.setattr(train, "device", lambda: "cpu")
    training = TrainingSettings.from_config({"model": {"max_seq_length": 64}, "training": {
        **DEFAULTS["training"], "lora_dropout": lora_dropout, "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1, "gradient_checkpointing": False, "target_modules": ["q_proj", "v_proj"]}})
    experiment = ExperimentParams.from_dict(EXPERIMENT)
    args = train.dpo_config(experiment, training, str(tmp_path / "out"), "fp32")
    if disable_dropout is not None:
        args.disable_dropout = disable_dropout
    rows = [{"prompt": [{"role": "user", "content": "Fine?"}], "chosen": [{"role": "assistant", "content": "Yes."}],
             "rejected": [{"role": "assistant", "content": "No."}]}] * 2
    return DPOTrainer(model=load_base(manifest, settings), ref_model=None, args=args, train_dataset=Dataset.from_list(rows),
                      processing_class=load_tokenizer(manifest, settings), peft_config=train.lora_config(experiment, training))


def test_lora_dropout_reaches_the_trained_model(tiny_model, tmp_path, monkeypatch):
    """The dropout of the LoRA layers in the model TRL trains is the configured one, and
    train_summary.json's effective values say so (TRL's default, disable_dropout, had zeroed it)."""
    trainer = trainer_for(tiny_model, tmp_path, monkeypatch, 0.3)
    assert train.dropout_rates(trainer.model)["lora_dropout"] == [0.3]
    effective = train.effective_training(trainer)
    assert effective["lora_dropout"] == [0.3] and effective["disable_dropout"] is False
    json.dumps(effective)  # train_summary.json holds it
    # The check is not vacuous: with TRL's default the same config trains without dropout.
    overridden = trainer_for(tiny_model, tmp_path, monkeypatch, 0.3, disable_dropout=True)
    assert train.dropout_rates(overridden.model)["lora_dropout"] == [0.0]
