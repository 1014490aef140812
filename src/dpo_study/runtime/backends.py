"""The training backends: the base model with a fresh LoRA adapter, loaded by the plan's library.

``unsloth`` loads and wraps it with Unsloth's ``FastLanguageModel`` (imported before transformers,
TRL and PEFT: ``import_unsloth``); ``trl`` loads the base the way every stage does
(``modeling.load_base``) and lets TRL wrap it. Which one, and in which precision, is the job's plan
(``dpo_study.runtime.plans``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch

from dpo_study.runtime import modeling
from dpo_study.runtime.plans import JobPlan

log = logging.getLogger(__name__)



def import_unsloth() -> None:
    """``import unsloth`` the way it must be: before transformers, TRL and PEFT, so its patches apply."""
    import sys

    if "unsloth" in sys.modules:
        return
    late = [name for name in ("transformers", "trl", "peft") if name in sys.modules]
    if late:
        log.warning("unsloth is imported after %s: some of its patches may not apply", ", ".join(late))
    # Unsloth writes generated trainer code to ./unsloth_compiled_cache unless told otherwise.
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION",
                          str(Path(tempfile.gettempdir(), f"dpo-study-unsloth-{os.getuid()}")))
    import unsloth  # noqa: F401


def load_for_training(job: JobPlan, lora, seed: int, max_length: int):
    """(model, peft_config for the trainer): the base with a fresh LoRA adapter, by the job's training
    plan's backend; the base as the job's load plan says (the training plan's precision).

    ``lora`` is the experiment's ``peft.LoraConfig``. TRL wraps the base itself (``peft_config``);
    Unsloth wraps it with its own ``get_peft_model`` and the trainer gets no config.
    """
    plan, load = job.train, job.load
    if plan.backend == "unsloth":
        import_unsloth()
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(
            model_name=load.path,
            max_seq_length=max_length,
            dtype=torch.bfloat16 if plan.precision == "bf16" else torch.float16,
            load_in_4bit=plan.load_in_4bit,
            trust_remote_code=load.trust_remote_code,
        )
        model = FastLanguageModel.get_peft_model(
            model,
            r=lora.r,
            lora_alpha=lora.lora_alpha,
            lora_dropout=lora.lora_dropout,
            target_modules=sorted(lora.target_modules),
            bias="none",
            use_gradient_checkpointing="unsloth" if plan.gradient_checkpointing else False,
            random_state=seed,
            max_seq_length=max_length,
        )
        return model, None
    # The plan's precision is weights_in_4bit's for these settings: the same base the other stages load.
    return modeling.load_planned(load), lora
