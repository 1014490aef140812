"""LoRA-DPO training of one experiment with TRL's DPOTrainer.

The reference model is the base model with the adapter switched off (``ref_model=None`` with a PEFT
config), so one copy of the weights serves both. The same code runs on the CPU (TRL 1.16) and on a
GPU (TRL 1.15, optionally 4-bit): only the precision and the optimizer come from the device/config.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback

from dpo_study.config import artifacts, atomic, provenance
from dpo_study.config.settings import ExperimentParams, ModelSettings, TrainingSettings

from dpo_study.runtime import backends, plans

from dpo_study.stages import train_guards
from dpo_study.stages.data import heldout_pairs
from dpo_study.config.data_files import load_rows
from dpo_study.runtime.modeling import load_tokenizer, read_manifest
from dpo_study.runtime.plans import device
from dpo_study.stages.reference import attach_reference_logps
from dpo_study.analysis.stability import loss_spikes

log = logging.getLogger(__name__)

STEP_COLUMNS = [
    "step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
    "rewards/accuracies", "grad_norm", "learning_rate", "num_tokens",
]


class StepLog(TrainerCallback):
    """Keeps every training log line (one per optimizer step with ``logging_steps=1``)."""

    def __init__(self):
        self.rows: list[dict] = []
        self.last = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()
        # After a resume, the steps before the checkpoint come from its saved history.
        self.rows = [{"step": h["step"], **h} for h in state.log_history if "loss" in h]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            now = time.perf_counter()  # wall time since the previous log line: one step's time
            self.rows.append({"step": state.global_step, **logs, "seconds": round(now - self.last, 3)})
            self.last = now


def precision_flags(precision: str) -> dict:
    """TrainingArguments' precision: bf16 autocast, or fp16 with loss scaling (GPUs without bf16), or fp32."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def dpo_config(experiment: ExperimentParams, training: TrainingSettings, output_dir: str, precision: str = "bf16"):
    """TRL's config from the typed settings: the one place where a setting meets TRL's name for it.

    ``training`` has the recipe's fields filled in (``plans.TrainPlan.training_settings``). Named
    otherwise by TRL: ``num_epoch`` (num_train_epochs), ``seed`` (also data_seed), ``cpu_optim``
    (optim on the CPU), and ``warmup_ratio``, which transformers 5 takes as ``warmup_steps``: a value
    below 1 is a fraction of the total steps (``TrainingArguments.get_warmup_steps``).
    """
    from trl import DPOConfig

    on_gpu = device() == "cuda"
    if training.use_liger_kernel and not on_gpu:
        raise ValueError("training.use_liger_kernel: Liger's kernels are Triton kernels and need a CUDA GPU; "
                         "this training job runs on the CPU (set it to false)")
    if training.torch_compile_mode == "reduce-overhead" and not on_gpu:
        raise ValueError("training.torch_compile_mode: reduce-overhead captures CUDA graphs and needs a CUDA GPU; "
                         "this training job runs on the CPU (use default, or null)")
    return DPOConfig(
        output_dir=output_dir,
        num_train_epochs=experiment.num_epoch,
        learning_rate=experiment.learning_rate,
        beta=experiment.beta,
        seed=experiment.seed,
        data_seed=experiment.seed,
        per_device_train_batch_size=training.per_device_train_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        warmup_steps=training.warmup_ratio,  # a fraction (the schema keeps it below 1): see the docstring
        lr_scheduler_type=training.lr_scheduler_type,
        optim=training.optim if on_gpu else training.cpu_optim,
        weight_decay=training.weight_decay,
        max_length=training.max_length,
        loss_type=list(training.loss_type),
        loss_weights=None if training.loss_weights is None else list(training.loss_weights),
        gradient_checkpointing=training.gradient_checkpointing and on_gpu,
        use_liger_kernel=training.use_liger_kernel,
        torch_compile=training.torch_compile_mode is not None,
        torch_compile_mode=training.torch_compile_mode,
        **precision_flags(precision if on_gpu else "fp32"),
        use_cpu=not on_gpu,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss must reach the log (and train_guards), not be averaged away
        save_strategy="steps" if training.checkpoint_steps else "no",
        save_steps=max(training.checkpoint_steps, 1),
        save_total_limit=1,
        report_to=[],
        # TRL switches every dropout of the model off by default (the LoRA layers' too), which made
        # training.lora_dropout a dead setting: the project applies it (effective_training records it).
        disable_dropout=False,
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


def lora_config(experiment: ExperimentParams, training: TrainingSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=experiment.lora_r,
        lora_alpha=experiment.lora_alpha,
        lora_dropout=training.lora_dropout,
        target_modules=list(training.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def dropout_rates(model) -> dict:
    """The dropout probabilities the model trains with: the LoRA layers' and the base model's own."""
    lora, other = set(), set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            (lora if "lora_dropout" in name else other).add(float(module.p))
        elif "lora_dropout" in name and isinstance(module, torch.nn.Identity):
            lora.add(0.0)  # PEFT puts an Identity where the dropout is 0
    return {"lora_dropout": sorted(lora), "model_dropout": sorted(other)}


def effective_training(trainer) -> dict:
    """The values the libraries actually train with, after their own defaults and overrides (TRL's
    disable_dropout, the CPU's optimizer and checkpointing): train_summary.json records them, so a
    setting that did not arrive shows."""
    args = trainer.args
    steps = trainer.state.max_steps
    return {
        **dropout_rates(trainer.model),
        "disable_dropout": args.disable_dropout,
        "learning_rate": args.learning_rate,
        "beta": args.beta,
        "loss_type": list(args.loss_type) if isinstance(args.loss_type, (list, tuple)) else [args.loss_type],
        "loss_weights": args.loss_weights,
        "weight_decay": args.weight_decay,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "warmup_steps": args.get_warmup_steps(steps) if steps > 0 else None,
        "optim": str(getattr(args.optim, "value", args.optim)),
        "gradient_checkpointing": args.gradient_checkpointing,
        "max_length": args.max_length,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "num_train_epochs": args.num_train_epochs,
        "seed": args.seed,
    }


def longest_sequence(tokenizer, pair_rows: list[dict]) -> int:
    """Tokens of the longest conversation (prompt and one answer, chat template included) of the pairs."""
    return max(len(tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=True, return_dict=False))
               for row in pair_rows for side in ("chosen", "rejected"))


def peak_memory_gib() -> float:
    if device() == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def train_adapter(
    manifest: str,
    pairs: str,
    adapter: str,
    train_log: str,
    summary: str,
    checkpoints: str,
    experiment: ExperimentParams,
    training: TrainingSettings,
    model_settings: ModelSettings,
    train_rows: str | None = None,
    threads: int = 1,
    plan: plans.JobPlan | None = None,
) -> None:
    """Stage: train one experiment's LoRA adapter; write it, its per-step log and a summary.

    ``train_rows`` (the data's training file): its rows after the first ``data_size`` become held-out
    pairs, evaluated once after training (``eval_rewards_accuracies``/``_margins`` in the summary).
    ``plan``: the job's plan, as the stage runner computed it (planned here when called without)."""
    job_start, started_at = time.perf_counter(), time.time()
    if torch.cuda.is_initialized():  # a resident worker's earlier jobs are not this job's peak
        torch.cuda.reset_peak_memory_stats()
    pair_rows = artifacts.read_pairs(pairs, experiment.data_size)  # before the model loads
    torch.set_num_threads(threads)
    manifest_path, manifest = manifest, read_manifest(manifest)
    tokenizer = load_tokenizer(manifest, model_settings)
    # Backend, precision, batch split etc. for this machine (runtime.plans); recipe fields filled in.
    job = plan or plans.plan_job(manifest, training, model_settings)
    if job.train.device == "cuda":  # the batch split for these pairs' lengths, not every sequence at max_seq_length
        job = dataclasses.replace(job, train=plans.plan_for_job(
            manifest, training, model_settings, sequence_length=longest_sequence(tokenizer, pair_rows)))
    plan = job.train
    training = plan.training_settings(training)
    log.info("training plan: %s", plan.as_dict())
    base, peft_config = backends.load_for_training(
        job, lora_config(experiment, training), experiment.seed, training.max_length
    )
    loaded = time.perf_counter()
    from datasets import Dataset
    from trl import DPOTrainer

    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in pair_rows]
    heldout = [{k: r[k] for k in ("prompt", "chosen", "rejected")}
               for r in heldout_pairs(load_rows(train_rows, "train"), experiment.data_size,
                                      experiment.support_ratio, rows[0]["prompt"][0]["content"])] \
        if train_rows else []
    steps = StepLog()
    resume = train_guards.resume_point(
        checkpoints, train_guards.fingerprint(manifest_path, pairs, experiment.to_dict(), training.to_dict(),
                                              model_settings.to_dict())
    )
    resumed_from_step = train_guards.checkpoint_step(Path(resume)) if resume else 0
    trainer = DPOTrainer(
        model=base,
        ref_model=None,
        args=dpo_config(experiment, training, checkpoints, plan.precision),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(heldout) if heldout else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[steps, train_guards.NumericalGuard(training.stop_grad_norm), train_guards.NoFinalCheckpoint()],
    )
    ref_seconds = 0.0
    if plan.precompute_ref_logps:
        # On a GPU one micro-batch a pass, so the pass needs less memory than the training step that the
        # plan fitted (runtime.memory); on the CPU four, for fewer passes.
        micro_batches = 1 if plan.device == "cuda" else 4
        ref_seconds = attach_reference_logps(trainer, batch_size=micro_batches * training.per_device_train_batch_size)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    evaluation = {}
    if heldout:
        trainer.precompute_ref_logps = False  # the held-out pairs have no cached reference log-probs
        # TRL reports the mean over eval batches (of per_device_eval_batch_size pairs): exact per pair
        # when the pairs fill whole batches.
        evaluation = trainer.evaluate()
    with atomic.atomic_path(adapter) as temp:
        trainer.model.save_pretrained(temp, safe_serialization=True)
    if training.torch_compile_mode is not None:
        torch._dynamo.reset()  # its graphs and guards hold this job's adapter; a resident worker's next job compiles its own

    table = pd.DataFrame(steps.rows)
    table = table.reindex(columns=[c for c in STEP_COLUMNS if c in table.columns]
                          + [c for c in table.columns if c not in STEP_COLUMNS])
    with atomic.atomic_path(train_log) as temp:
        table.to_csv(temp, index=False)
    last = table.iloc[-1] if len(table) else {}
    tokens = float(last.get("num_tokens", 0) or 0)
    report = {
        # The mean over every step, also those before a resume (result.training_loss has only the last part).
        "train_loss": float(table["loss"].mean()),
        "final_loss": float(last.get("loss", float("nan"))),
        "rewards_margins": float(last.get("rewards/margins", float("nan"))),
        "rewards_accuracies": float(last.get("rewards/accuracies", float("nan"))),
        "eval_pairs": len(heldout),
        "eval_rewards_accuracies": float(evaluation.get("eval_rewards/accuracies", float("nan"))),
        "eval_rewards_margins": float(evaluation.get("eval_rewards/margins", float("nan"))),
        # Stability: the largest gradient norm and the steps whose loss jumped (analysis.stability.loss_spikes).
        "max_grad_norm": float(table["grad_norm"].max()) if "grad_norm" in table else float("nan"),
        "loss_spikes": loss_spikes(table["loss"]),
        "steps": int(result.global_step),
        "pairs": len(rows),
        "train_seconds": round(seconds, 2),
        "tokens": int(tokens),
        "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
        "peak_memory_gib": round(peak_memory_gib(), 3),
        "device": device(),
        "resumed_from_step": resumed_from_step,
        "provenance": provenance.record(),
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES") if device() == "cuda" else None,
        "started_at": round(started_at, 2),
        "finished_at": round(time.time(), 2),
        "load_seconds": round(loaded - job_start, 2),
        "setup_seconds": round(start - job_start, 2),
        "reference_pass_seconds": round(ref_seconds, 2),
        "plan": plan.as_dict(),
        "effective": effective_training(trainer),
    }
    atomic.write_json(summary, report)
    shutil.rmtree(checkpoints)  # the adapter is written: nothing to resume any more
    log.info("trained %d steps in %.1f s: %s", report["steps"], seconds, report)
