"""The base model kept loaded across the jobs of one worker process (``dpo_study.runtime.worker_process``).

Outside a worker nothing is kept: ``load`` calls the loader, as a job always did. Inside one,
``load`` returns the model already in memory when the load plan (path, precision, quantization,
device) is the same, so a job pays no model load. Every job must see the model exactly as freshly
loaded: after each job ``reset`` takes the LoRA layers out that training, generation or the
implicit reward put in, restores the flags a trainer sets (train mode, gradient checkpointing,
``requires_grad``, ``use_cache``, hooks), frees gradients and cached memory, and then compares the
model with the fingerprint taken at load (its modules, parameters with a checksum of each, hooks,
config and attributes). Anything that still differs evicts the model: the next job loads it afresh.
"""

from __future__ import annotations

import copy
import gc
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

_enabled = False


@dataclass
class Entry:
    key: object  # the load plan (hashable): modeling.LoadPlan
    model: object
    fingerprint: dict
    state: dict


_entry: Entry | None = None
stats = {"loads": 0, "reuses": 0, "evictions": 0}


def enable() -> None:
    """Called once by the worker: from now on ``load`` keeps what it loads."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
         "_state_dict_hooks", "_load_state_dict_pre_hooks")


def _hooks(module) -> int:
    return sum(len(getattr(module, name, {})) for name in HOOKS)


def fingerprint(model) -> dict:
    """What a job may change by accident: structure, parameters (with checksums), hooks, flags, config."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    with torch.no_grad():
        sums = [torch.sum(t.detach(), dtype=torch.float64 if not t.is_floating_point() else torch.float32)
                .double().to("cpu", non_blocking=False) for _, t in named]
    checksums = torch.stack(sums).tolist() if sums else []
    return {
        "modules": [(name, type(m).__name__, m.training, _hooks(m)) for name, m in model.named_modules()],
        "tensors": [(name, str(t.dtype), str(t.device), tuple(t.shape), bool(t.requires_grad), t.grad is None, s)
                    for (name, t), s in zip(named, checksums)],
        "config": model.config.to_json_string(use_diff=False),
        "generation_config": getattr(model, "generation_config", None) and model.generation_config.to_json_string(),
        "attributes": sorted(vars(model).keys()),
    }


def _state(model) -> dict:
    """The flags a trainer changes and ``reset`` puts back."""
    return {
        "attributes": set(vars(model)),
        "hooks": {name: {hooks: set(getattr(m, hooks, {})) for hooks in HOOKS} for name, m in model.named_modules()},
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "config": model.config.to_dict(),
        # TRL's trainer edits the generation config (pad and EOS ids): restored from this copy.
        "generation_config": copy.deepcopy(getattr(model, "generation_config", None)),
    }


def load(key, loader):
    """The model for ``key``: the resident one inside a worker (same key), else ``loader()``."""
    global _entry
    if not _enabled:
        return loader()
    if _entry is not None and _entry.key == key:
        stats["reuses"] += 1
        log.info("base model already loaded in this worker: reused (%s)", key)
        return _entry.model
    evict("another load plan" if _entry is not None else None)
    model = loader()
    stats["loads"] += 1
    _entry = Entry(key, model, fingerprint(model), _state(model))
    return model


def evict(reason: str | None = None) -> None:
    global _entry
    if _entry is None:
        return
    if reason:
        log.info("resident model dropped: %s", reason)
    stats["evictions"] += 1
    _entry = None
    free_memory()


def free_memory() -> None:
    """After a job, in a process that has started CUDA: a full collection (reference cycles can hold
    GPU memory) and CUDA's cached blocks given back. Elsewhere Python's own collections suffice:
    a full one walks every object of torch, transformers and pandas, ~0.2 s a job (the CPU-stage
    worker's report jobs, a CPU machine's every job)."""
    if torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()


def strip_adapters(model) -> int:
    """Replace every PEFT tuner layer by the layer it wraps; returns how many were taken out."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return 0
    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, module in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
    for attribute in ("peft_config", "_hf_peft_config_loaded"):
        if attribute in vars(model):
            delattr(model, attribute)
    return len(wrapped)


def _restore(model, state: dict) -> None:
    # transformers 5.24 renamed gradient checkpointing to activation checkpointing; 5.17 has the old names only.
    new_names = hasattr(type(model), "is_activation_checkpointing")
    on = getattr(model, "is_activation_checkpointing" if new_names else "is_gradient_checkpointing", False)
    if callable(on):
        on = on()
    if on:
        getattr(model, "activation_checkpointing_disable" if new_names else "gradient_checkpointing_disable")()
    for name, module in model.named_modules():
        module.training = state["training"].get(name, module.training)
        for hooks, kept in state["hooks"].get(name, {}).items():  # hooks a trainer added (input require-grads)
            registry = getattr(module, hooks, {})
            for key in [k for k in registry if k not in kept]:
                del registry[key]
    for attribute in set(vars(model)) - state["attributes"]:
        delattr(model, attribute)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(state["requires_grad"].get(name, parameter.requires_grad))
        parameter.grad = None
    for key, value in state["config"].items():
        if getattr(model.config, key, None) != value:
            setattr(model.config, key, value)
    saved = state["generation_config"]
    if saved is not None and model.generation_config.to_json_string() != saved.to_json_string():
        model.generation_config = copy.deepcopy(saved)


def _first_difference(before: dict, after: dict) -> str | None:
    for part in before:
        if before[part] != after[part]:
            if isinstance(before[part], list) and isinstance(after[part], list):
                for old, new in zip(before[part], after[part]):
                    if old != new:
                        return f"{part}: {old} -> {new}"
                return f"{part}: {len(before[part])} -> {len(after[part])} entries"
            return part
    return None


def reset() -> None:
    """After each job: the resident model as freshly loaded, or no resident model."""
    if _entry is None:
        free_memory()
        return
    model = _entry.model
    try:
        removed = strip_adapters(model)
        _restore(model, _entry.state)
        free_memory()
        difference = _first_difference(_entry.fingerprint, fingerprint(model))
    except Exception as error:  # a model we cannot check is not kept
        difference = f"could not be checked ({error!r})"
    if difference:
        log.warning("the job changed the resident model (%s): it will be loaded afresh", difference)
        evict()
    elif removed:
        log.info("resident model reset: %d adapter layers taken out", removed)
