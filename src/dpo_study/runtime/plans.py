"""Plans: how a job loads the base model and trains on this machine, decided before anything loads.

``load_plan`` gives the base model's precision and device (one plan for training, generation, the
implicit reward and the judges, so all of them see the training's reference); ``plan_for_job`` the
training backend, micro-batch split, checkpointing and optimizer within the GPU's memory
(``runtime.memory`` estimates a training step's peak). Only torch and the standard library are
imported, so a job can plan (and ``import unsloth`` first) before anything imports transformers or TRL.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

import torch

from dpo_study.config.recipes import BACKENDS, FAST_OPTIM, HOMEWORK, RECIPES, BackendError, batch_split
from dpo_study.config.settings import ModelSettings, TrainingSettings
from dpo_study.runtime.memory import ModelShape, gpu_memory_bytes, model_shape, usable_bytes


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_capability() -> tuple[int, int] | None:
    if not torch.cuda.is_available():
        return None
    try:
        return tuple(torch.cuda.get_device_capability())
    except (AssertionError, RuntimeError):  # a GPU simulated on a CPU build (tests)
        return None


def compute_dtype():
    """bf16 on a GPU that has it (compute capability >= 8.0: A100, H100, RTX 30xx and later), fp16 on
    older ones (the T4 of Colab and Kaggle, V100), fp32 on the CPU. The 4-bit base computes in it too."""
    capability = gpu_capability()
    if capability is None and device() != "cuda":
        return torch.float32
    return torch.float16 if capability is not None and tuple(capability) < (8, 0) else torch.bfloat16


@dataclass(frozen=True)
class LoadPlan:
    """How the study's base model is loaded. One plan for training, generation, the implicit reward
    and the judges, so that all of them see the same base model (the training's reference)."""

    path: str
    device: str
    load_in_4bit: bool
    trust_remote_code: bool

    @property
    def dtype(self):
        """bf16 on a GPU that has it, fp16 on one that has not, fp32 on the CPU (``compute_dtype``)."""
        return compute_dtype() if self.device == "cuda" else torch.float32


def load_plan(manifest: dict, settings: ModelSettings) -> LoadPlan:
    """The plan for the model settings (the study's ``model`` group) on this machine: 4-bit or bf16 by
    the explicit ``load_in_4bit``, else by the recipe (backends.weights_in_4bit)."""

    where = device()
    in_4bit = weights_in_4bit(settings, device=where, gpu_bytes=gpu_memory_bytes(),
                              shape=model_shape(manifest["path"]) if where == "cuda" else None)
    return LoadPlan(str(manifest["path"]), where, in_4bit, settings.trust_remote_code)


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def weights_in_4bit(model_settings: ModelSettings, *, device: str, gpu_bytes: int | None, shape: ModelShape | None) -> bool:
    """4-bit base weights? Explicit setting, else the recipe: homework always, fast only when bf16 cannot train.

    One function for the training and the generation jobs, so both see the same base model.
    """
    if device != "cuda":
        return False
    explicit = model_settings.load_in_4bit
    if explicit is not None:
        return bool(explicit)
    if model_settings.recipe == "homework":
        return True
    if gpu_bytes is None or shape is None:
        return False
    # bf16 if it trains with the smallest footprint: one pair a micro-batch, with checkpointing.
    smallest = shape.weight_bytes(False) + shape.activation_bytes(2, model_settings.max_seq_length, True)
    return smallest > usable_bytes(gpu_bytes)


@dataclass(frozen=True)
class TrainPlan:
    """The resolved training settings of one job; recorded in its summary."""

    backend: str
    recipe: str
    device: str
    load_in_4bit: bool
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    optim: str
    precompute_ref_logps: bool
    estimated_peak_gib: float | None = None
    # Compute precision: bf16 where the GPU has it, else fp16 with loss scaling (TRL's fp16=True), fp32 on a CPU.
    precision: str = "bf16"

    def training_settings(self, training: TrainingSettings) -> TrainingSettings:
        """The training settings with every recipe-decided field filled in."""
        return training.replace(**{k: getattr(self, k) for k in (
            "per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing",
            "optim", "precompute_ref_logps",
        )})

    def as_dict(self) -> dict:
        return asdict(self)


def choose_backend(requested: str, *, device: str, in_4bit: bool, unsloth_available: bool) -> str:
    if requested not in BACKENDS:
        raise BackendError(f"training.backend: {requested!r} is not one of {', '.join(BACKENDS)}")
    if requested == "unsloth":
        if device != "cuda":
            raise BackendError("training.backend: unsloth needs a CUDA GPU; use auto or trl on this machine")
        if not unsloth_available:
            raise BackendError("training.backend: unsloth is not installed (pip install 'dpo-study[gpu]')")
        return "unsloth"
    if requested == "trl" or device != "cuda":
        return "trl"
    # auto on a GPU: Unsloth's kernels pay for 4-bit weights; for bf16, plain TRL was faster in the
    # benchmark (BENCHMARKS.md) and skips Unsloth's import and patching time.
    return "unsloth" if in_4bit and unsloth_available else "trl"


def plan_training(
    training: TrainingSettings,
    model_settings: ModelSettings,
    *,
    device: str,
    gpu_bytes: int | None,
    shape: ModelShape | None,
    unsloth_available: bool,
    bitsandbytes_available: bool = True,
    bf16_supported: bool = True,
    sequence_length: int | None = None,
) -> TrainPlan:
    """Resolve backend, precision, batch split, checkpointing and optimizer for this machine.

    A pure function of its arguments (the machine is passed in), so it is tested on the CPU.
    ``sequence_length``: the longest sequence of the job's pairs (TRL pads a batch to its longest);
    without it the memory estimate pads every sequence to ``model.max_seq_length``.
    """
    recipe = training.recipe
    if recipe not in RECIPES:
        raise BackendError(f"training.recipe: {recipe!r} is not one of {', '.join(RECIPES)}")
    in_4bit = weights_in_4bit(model_settings.replace(recipe=recipe), device=device, gpu_bytes=gpu_bytes, shape=shape)
    backend = choose_backend(training.backend, device=device, in_4bit=in_4bit,
                             unsloth_available=unsloth_available)
    if in_4bit and backend == "trl" and not bitsandbytes_available:
        raise BackendError("model.load_in_4bit: 4-bit weights need bitsandbytes (pip install 'dpo-study[gpu]'), "
                           "or set model.load_in_4bit: false")
    effective, splits = batch_split(training.per_device_train_batch_size, training.gradient_accumulation_steps, recipe)
    explicit_checkpointing = training.gradient_checkpointing
    precompute = training.precompute_ref_logps
    if precompute is None:
        precompute = HOMEWORK["precompute_ref_logps"] if recipe == "homework" else True

    if device != "cuda":
        micro, accumulation = splits[0]
        return TrainPlan(backend, recipe, device, False, micro, accumulation, False,
                         training.cpu_optim, bool(precompute), precision="fp32")

    optim = training.optim or (HOMEWORK["optim"] if recipe == "homework" else FAST_OPTIM)
    if explicit_checkpointing is not None:
        checkpointing_options = [bool(explicit_checkpointing)]
    elif recipe == "homework":
        checkpointing_options = [HOMEWORK["gradient_checkpointing"]]
    else:
        checkpointing_options = [False, True]

    def peak(micro: int, checkpointing: bool) -> float | None:
        if shape is None:
            return None
        length = min(sequence_length or model_settings.max_seq_length, model_settings.max_seq_length)
        return shape.training_peak_bytes(in_4bit, micro, length, checkpointing)

    chosen = None
    if shape is not None and gpu_bytes is not None and len(splits) * len(checkpointing_options) > 1:
        budget = usable_bytes(gpu_bytes)
        # Without checkpointing first (a third less compute), from the largest micro-batch down;
        # then with checkpointing. A split that fits nowhere falls back to micro-batch 1.
        for checkpointing in checkpointing_options:
            for micro, accumulation in splits:
                if peak(micro, checkpointing) <= budget:
                    chosen = (micro, accumulation, checkpointing)
                    break
            if chosen:
                break
    if chosen is None:
        micro, accumulation = splits[0] if len(splits) == 1 or shape is None else splits[-1]
        chosen = (micro, accumulation, checkpointing_options[-1])
    micro, accumulation, checkpointing = chosen
    estimate = peak(micro, checkpointing)
    return TrainPlan(backend, recipe, device, in_4bit, micro, accumulation, checkpointing, optim, bool(precompute),
                     None if estimate is None else round(estimate / 2**30, 1),
                     precision="bf16" if bf16_supported else "fp16")


def plan_for_job(manifest: dict, training: TrainingSettings, model_settings: ModelSettings,
                 sequence_length: int | None = None) -> TrainPlan:
    """The plan on this machine (after the job has claimed its GPU)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return plan_training(
        training, model_settings,
        device=device,
        bf16_supported=compute_dtype() != torch.float16,
        gpu_bytes=gpu_memory_bytes(),
        shape=model_shape(manifest["path"]) if device == "cuda" else None,
        unsloth_available=unsloth_installed(),
        bitsandbytes_available=bitsandbytes_installed(),
        sequence_length=sequence_length,
    )


@dataclass(frozen=True)
class JobPlan:
    """What a job decides about this machine before anything loads, once per job (the stage runner,
    ``runtime.runner``, computes it and hands it to a stage that takes ``plan``)."""

    model: str | None  # the base model's folder (its manifest's path); None: the job loads no model
    load: LoadPlan | None  # how the base model is loaded; None without model settings
    train: TrainPlan | None = None  # a training job's backend, precision and batch split

    @property
    def unsloth(self) -> bool:
        """Unsloth must patch the process (imported before transformers, TRL and PEFT)."""
        return self.train is not None and self.train.backend == "unsloth"

    @property
    def process_key(self) -> dict:
        """What a process that runs the job is set up for: a resident worker serves one of these."""
        return {"model": self.model, "unsloth": self.unsloth}


def plan_job(manifest: dict | None, training: TrainingSettings | None = None,
             model_settings: ModelSettings | None = None) -> JobPlan:
    """The job's plan on this machine (after it has claimed its GPU). A training job loads the base
    in its training plan's precision, which is ``weights_in_4bit``'s for the same settings."""
    if manifest is None:
        return JobPlan(None, None)
    if model_settings is None:
        return JobPlan(str(manifest["path"]), None)
    if training is None:
        return JobPlan(str(manifest["path"]), load_plan(manifest, model_settings))
    train = plan_for_job(manifest, training, model_settings)
    load = LoadPlan(str(manifest["path"]), train.device, train.load_in_4bit, model_settings.trust_remote_code)
    return JobPlan(load.path, load, train)
