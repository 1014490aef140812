"""Training backends and recipes as settings: their names, the homework notebook's values and the batch
split a recipe implies (checked at parse time; ``dpo_study.runtime.plans`` plans a job from them).

``training.backend`` picks the library: ``unsloth`` (the homework notebook's: Unsloth's
``FastLanguageModel``, imported before transformers and TRL), ``trl`` (TRL + PEFT, 4-bit through
bitsandbytes when asked) or ``auto``. ``training.recipe`` picks the settings that the config leaves
unset (``null``): ``homework`` is the notebook's exact recipe (4-bit weights, micro-batch 2 x 4
accumulation steps, gradient checkpointing, paged 8-bit AdamW, the reference pass in the loop);
``fast`` keeps its math (the effective batch of 8 pairs, the DPO loss, AdamW, the schedule) and
spends the GPU's memory on speed: bf16 weights, the largest micro-batch that fits, no gradient
checkpointing when it fits, fused AdamW, reference log-probs computed once before the loop.
An explicit setting in the config always wins over the recipe.
"""

from __future__ import annotations

from dpo_study.config.errors import ConfigError


BACKENDS = ("auto", "unsloth", "trl")


RECIPES = ("fast", "homework")


# The homework notebook's settings, which the `homework` recipe uses for every unset field.
HOMEWORK = {
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 4,
    "gradient_checkpointing": True,
    "optim": "paged_adamw_8bit",
    "load_in_4bit": True,
    "precompute_ref_logps": False,
}


HOMEWORK_EFFECTIVE_BATCH = HOMEWORK["per_device_train_batch_size"] * HOMEWORK["gradient_accumulation_steps"]


FAST_OPTIM = "adamw_torch_fused"


class BackendError(ConfigError):
    """The machine cannot run the requested backend or precision; the message names the field."""


def batch_split(micro: int | None, accumulation: int | None, recipe: str) -> tuple[int, list[tuple[int, int]]]:
    """The effective batch and the (micro-batch, accumulation) splits to try, best first.

    ``micro``/``accumulation``: training.per_device_train_batch_size/gradient_accumulation_steps.
    Both set: exactly that. One set: the other keeps the homework's effective batch of 8. Neither:
    the homework recipe's 2 x 4, or for `fast` every split of 8 from the largest micro-batch down.
    """
    if micro and accumulation:
        return micro * accumulation, [(micro, accumulation)]
    effective = HOMEWORK_EFFECTIVE_BATCH
    if micro or accumulation:
        given, name = (micro, "per_device_train_batch_size") if micro else (accumulation, "gradient_accumulation_steps")
        if effective % given:
            raise BackendError(
                f"training.{name}: {given} does not divide the homework's effective batch of {effective} pairs; "
                "set both per_device_train_batch_size and gradient_accumulation_steps"
            )
        other = effective // given
        return effective, [(micro, other) if micro else (other, accumulation)]
    if recipe == "homework":
        return effective, [(HOMEWORK["per_device_train_batch_size"], HOMEWORK["gradient_accumulation_steps"])]
    return effective, [(m, effective // m) for m in range(effective, 0, -1) if effective % m == 0]
