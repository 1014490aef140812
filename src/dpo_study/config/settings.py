"""Typed settings: one frozen dataclass per settings group, built once by the Study from the checked config.

Each field is named as in the config schema (``workflow/schemas/config.schema.yaml``), so nothing is
renamed on the way to a stage. The one value that is not a schema field of its group is named here
with its reason: ``TrainingSettings.max_length`` (the tokens a pair is cut to), which is
``model.max_seq_length``. Where a library calls a setting otherwise, the stage that builds the
library's config says so next to it (``stages/train.py: dpo_config``: ``warmup_ratio``).

How settings reach a stage: a Snakemake rule's params carry ``settings.to_dict()`` (plain values:
Snakemake's params trigger compares their ``repr``, and skips values it cannot represent, which a
dataclass would be), and the stage runner (``runtime/runner.py``) turns each back into its class by the
stage's annotation (``training: TrainingSettings``). Tests call stages with the objects themselves.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping


class Settings:
    """What every settings group shares: strict construction from plain values and back."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """The group from its plain values (``to_dict``'s); a missing or unknown field is an error."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: typed(hints[name], value) for name, value in values.items()})

    def to_dict(self) -> dict:
        """Plain values (lists for tuples), as a Snakemake param or a JSON record carries them."""
        return plain(dataclasses.asdict(self))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def settings_class(annotation) -> type[Settings] | None:
    """The settings class an annotation names (``X`` or ``X | None``), else None (also for the base
    ``Settings``: which group it is, the stage decides, e.g. a judge's by the judge's name)."""
    if isinstance(annotation, type) and issubclass(annotation, Settings) and dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        classes = [c for c in map(settings_class, typing.get_args(annotation)) if c is not None]
        return classes[0] if len(classes) == 1 else None
    return None


def typed(annotation, value):
    """A plain value as the field's annotation holds it: a nested group from its dict, a tuple from a list."""
    group = settings_class(annotation)
    if group is not None and isinstance(value, Mapping):
        return group.from_dict(value)
    if isinstance(value, list) and (typing.get_origin(annotation) is tuple or any(
            typing.get_origin(a) is tuple for a in typing.get_args(annotation))):
        return tuple(value)
    return value


@dataclass(frozen=True)
class ModelSettings(Settings):
    """How every model-loading job loads the base model (``model``, without its name: the manifest
    holds the model). ``recipe`` is training's: it decides the base precision when ``load_in_4bit``
    is null, and every stage must load the base the training saw."""

    trust_remote_code: bool
    load_in_4bit: bool | None
    max_seq_length: int
    recipe: str

    @classmethod
    def from_config(cls, config: dict) -> ModelSettings:
        model = {name: value for name, value in config["model"].items() if name != "name"}
        return cls.from_dict({**model, "recipe": config["training"]["recipe"]})


@dataclass(frozen=True)
class TrainingSettings(Settings):
    """``training``: shared by every experiment. The fields left null are the recipe's to fill
    (``runtime.plans.TrainPlan.training_settings``)."""

    backend: str
    recipe: str
    per_device_train_batch_size: int | None
    gradient_accumulation_steps: int | None
    warmup_ratio: float
    lr_scheduler_type: str
    optim: str | None
    cpu_optim: str
    weight_decay: float
    lora_dropout: float
    target_modules: tuple[str, ...]
    loss_type: tuple[str, ...]
    loss_weights: tuple[float, ...] | None
    gradient_checkpointing: bool | None
    precompute_ref_logps: bool | None
    use_liger_kernel: bool
    torch_compile_mode: str | None
    checkpoint_steps: int
    stop_grad_norm: float
    # Not a field of ``training``: the tokens a pair (prompt and answer) is cut to in training, which
    # is ``model.max_seq_length``, the length the model is loaded for.
    max_length: int

    @classmethod
    def from_config(cls, config: dict) -> TrainingSettings:
        # The whole section: a field the schema gains and this class lacks is an error, not dropped.
        return cls.from_dict({**config["training"], "max_length": config["model"]["max_seq_length"]})


@dataclass(frozen=True)
class GenerationSettings(Settings):
    """``generation``: how every model answers a prompt set."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    batch_size: int
    decode: str
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> GenerationSettings:
        return cls.from_dict(config["generation"])


@dataclass(frozen=True)
class DemoModelSettings(Settings):
    """``demo_model``: how the embedded demo model is built."""

    seed: int
    steps: int
    batch_size: int
    learning_rate: float
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int

    @classmethod
    def from_config(cls, config: dict) -> DemoModelSettings:
        return cls.from_dict(config["demo_model"])


# The judges' settings carry the schema's defaults (tests/config/test_settings.py checks that they agree), so
# that a judge made outside a study (make_judge in a test or a notebook) needs only what it changes.


@dataclass(frozen=True)
class NgramJudgeSettings(Settings):
    """The n-gram judge has no settings of its own (``judge.seed`` seeds it)."""


@dataclass(frozen=True)
class EmbeddingJudgeSettings(Settings):
    """``judge.embedding``."""

    model_path: str | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class LlmJudgeSettings(Settings):
    """``judge.llm``, and the model settings when it runs the study's base model (``backend: base_model``)."""

    backend: str = "base_model"
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    topic: str = "AI-generated art in the Studio Ghibli style"
    timeout_s: float = 60
    max_retries: int = 2
    concurrency: int = 4
    logprobs: bool = True
    model_settings: ModelSettings | None = None

    @property
    def uses_base_model(self) -> bool:
        return self.backend == "base_model"


JUDGE_SETTINGS: dict[str, type[Settings]] = {
    "ngram": NgramJudgeSettings, "embedding": EmbeddingJudgeSettings, "llm": LlmJudgeSettings,
}


def judge_settings_of(config: dict, name: str) -> Settings:
    """One judge's settings (``judge.<name>``); the llm judge that runs the base model gets its model settings."""
    settings = JUDGE_SETTINGS[name].from_dict(config["judge"].get(name, {}))
    if isinstance(settings, LlmJudgeSettings) and settings.uses_base_model:
        settings = settings.replace(model_settings=ModelSettings.from_config(config))
    return settings


@dataclass(frozen=True)
class JudgeSettings(Settings):
    """What a judge-training job is given besides its files: the judge's settings, the CV folds and seed."""

    settings: NgramJudgeSettings | EmbeddingJudgeSettings | LlmJudgeSettings
    cv_folds: int
    seed: int


@dataclass(frozen=True)
class ExperimentParams(Settings):
    """One experiment's parameters (``defaults``, an ``experiments`` entry or a grid point);
    ``mix_weights`` only for ``strategy: mix``."""

    num_epoch: int
    data_size: int
    support_ratio: float
    beta: float
    lora_r: int
    lora_alpha: int
    learning_rate: float
    strategy: str
    seed: int
    mix_weights: dict[str, float] | None = None

    def to_dict(self) -> dict:
        """Without ``mix_weights`` when the strategy draws none (as ``Experiment.params`` holds them)."""
        values = super().to_dict()
        if values["mix_weights"] is None:
            del values["mix_weights"]
        return values
