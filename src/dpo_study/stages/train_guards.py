"""What keeps a long training job safe: checkpoints to resume from, and a stop on numerical faults.

Checkpoints live in a folder beside the run's outputs that the rule does not declare as an output,
so Snakemake neither deletes it when the job fails nor when it reruns an incomplete job
(``--rerun-incomplete``): the rerun resumes from the last complete checkpoint. A fingerprint of
the settings, the model and the pairs guards against resuming a run made with other settings.
The folder is removed once the adapter is written.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from dpo_study.config import atomic
from dpo_study.config.provenance import file_sha256, settings_hash

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.txt"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class TrainingFault(RuntimeError):
    """Training diverged; the message names the step and what to change."""


class NumericalGuard(TrainerCallback):
    """Stops training at the first step whose loss is NaN/inf or whose gradient norm explodes.

    The gradient norm is the one before clipping; ``max_grad_norm`` is a divergence threshold,
    far above the norms of healthy LoRA-DPO steps.
    """

    def __init__(self, max_grad_norm: float):
        self.max_grad_norm = max_grad_norm

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss, grad_norm = logs.get("loss"), logs.get("grad_norm")
        problem = None
        if loss is not None and not math.isfinite(loss):
            problem = f"the training loss is {loss}"
        elif grad_norm is not None and not math.isfinite(grad_norm):
            problem = f"the gradient norm is {grad_norm}"
        elif grad_norm is not None and grad_norm > self.max_grad_norm:
            problem = f"the gradient norm {grad_norm:.4g} exceeds training.stop_grad_norm = {self.max_grad_norm:g}"
        if problem:
            message = (
                f"training stopped at step {state.global_step} of {state.max_steps}: {problem}; "
                "lower the learning rate or beta, or check the data and the base model"
            )
            log.error(message)
            raise TrainingFault(message)


class NoFinalCheckpoint(TrainerCallback):
    """The Trainer also saves a checkpoint after the last step, whenever it saves by steps: the
    adapter, the optimizer's state and the RNG states, only for the job to write the adapter again
    and remove the folder (little time unprofiled on the H100: BENCHMARKS.md). A job killed after
    its last step resumes from the last periodic checkpoint instead."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = False
        return control


def fingerprint(manifest: str, pairs: str, experiment: dict, training: dict, model_settings: dict) -> str:
    """What a checkpoint must have been made with to be resumed from."""
    return settings_hash(
        {
            "model_manifest": file_sha256(manifest),
            "pairs": file_sha256(pairs),
            "experiment": experiment,
            "training": training,
            "model_settings": model_settings,
        }
    )


def checkpoint_step(folder: Path) -> int | None:
    """The step of a complete checkpoint; None for anything else (the Trainer writes trainer_state.json last)."""
    match = CHECKPOINT.match(folder.name)
    if not (match and folder.is_dir()):
        return None
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    return int(match.group(1)) if state.get("global_step") == int(match.group(1)) else None


def resume_point(checkpoints: str | Path, settings_fingerprint: str) -> str | None:
    """The last complete checkpoint made with these settings, or None; prepares the folder.

    Checkpoints of other settings, and half-written ones of a killed save, are removed.
    """
    folder = Path(checkpoints)
    marker = folder / FINGERPRINT_FILE
    if folder.exists() and (not marker.is_file() or marker.read_text().strip() != settings_fingerprint):
        log.warning("discarding the checkpoints in %s: they were made with other settings", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(marker, settings_fingerprint + "\n")
    complete = {}
    for candidate in folder.glob("checkpoint-*"):
        step = checkpoint_step(candidate)
        if step is None:
            log.warning("removing the incomplete checkpoint %s", candidate)
            atomic.remove(candidate)
        else:
            complete[step] = candidate
    if not complete:
        return None
    last = complete[max(complete)]
    log.info("resuming training from %s (step %d)", last, max(complete))
    return str(last)
