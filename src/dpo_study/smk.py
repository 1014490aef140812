"""The one bridge from a Snakemake rule to a stage function of this package.

Every rule's script is one line, ``call("dpo_study.<module>:<function>", snakemake)``: the rule's
named input, output and params become the function's keyword arguments, so each stage is a plain
function that tests call without Snakemake. Everything the stage prints or logs goes to the rule's
log file.

A job that declares a GPU (``resources: gpu=1``) first claims its own GPU, before anything starts
CUDA. Then, with ``software.gpu_worker`` on (``auto``: everywhere but inside a SLURM job), it hands the stage
to the resident worker of that GPU (``dpo_study.worker``), which keeps the libraries imported and
the base model loaded across jobs. Otherwise the stage runs in this process, its module imported
only now (by name), so that Unsloth, when the job trains with it, is imported before transformers.
"""

from __future__ import annotations

import fcntl
import importlib
import inspect
import json
import logging
import os
import time
from contextlib import redirect_stderr, redirect_stdout

from dpo_study import gpus, worker

JOB_TIMES_VARIABLE = "DPO_STUDY_JOB_TIMES"  # a file: each job appends its timing (bench/study.py)


def plain(value):
    """Snakemake's path strings and named lists as plain ``str``/``list``/``dict`` (sent to a worker)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# Params that are there for Snakemake's params trigger only, not arguments of the stage: the
# hash of the code the rule runs (dpo_study.provenance.code_version).
TRIGGER_PARAMS = ("code",)


def stage_kwargs(smk) -> dict:
    """Named input, output and params, and the job's threads (passed to stages that take them)."""
    params = {name: value for name, value in smk.params.items() if name not in TRIGGER_PARAMS}
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **params}
    return {**plain(kwargs), "threads": smk.threads}


def resolve(stage: str):
    module, _, function = stage.partition(":")
    return getattr(importlib.import_module(module), function)


def claim_gpu() -> str | None:
    """This job's own GPU (``CUDA_VISIBLE_DEVICES``), before anything starts CUDA."""
    gpu = gpus.claim_gpu()
    # Batches of varying length fragment the caching allocator; growable segments are PyTorch's
    # remedy (BENCHMARKS.md). Read when CUDA first allocates, so set before; a user's own setting is kept.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    return gpu


def import_first(kwargs: dict) -> None:
    """Unsloth, when this job trains with it: before the stage's module imports transformers, TRL and PEFT."""
    if worker.plan_of(kwargs)["unsloth"]:
        from dpo_study.backends import import_unsloth

        import_unsloth()


def run_here(stage: str, kwargs: dict, log_path: str, gpu_job: bool) -> None:
    """The stage in this process, with its output and logging in the job's log."""
    with open(log_path, "w", buffering=1) as log_file, redirect_stdout(log_file), redirect_stderr(log_file):
        logging.basicConfig(
            stream=log_file, level=logging.INFO, force=True,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if gpu_job:
            import_first(kwargs)
        func = resolve(stage)
        if "threads" not in inspect.signature(func).parameters:
            kwargs = {k: v for k, v in kwargs.items() if k != "threads"}
        func(**kwargs)


def process_start_time() -> float | None:
    """When this process started (epoch seconds): a job's wall time includes Python's start and imports."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def record_job_time(path: str, record: dict) -> None:
    """One JSON line per job, for the study-level benchmark (``DPO_STUDY_JOB_TIMES``)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(record) + "\n")


def call(stage: str, smk) -> None:
    """Run ``stage`` (``"module:function"``) for the Snakemake job ``smk``."""
    start = time.time()
    gpu_job = bool(smk.resources.get("gpu", 0))
    gpu = claim_gpu() if gpu_job else None
    kwargs = stage_kwargs(smk)
    software = smk.config.get("software", {})
    # GPU jobs, and the stages that only need a warm process (worker.CPU_STAGES, in a worker of their own)
    in_worker = (gpu_job or stage in worker.CPU_STAGES) and worker.enabled(software.get("gpu_worker", "auto"))
    result = {}
    if in_worker:
        result = worker.run_stage(stage, kwargs, smk.log[0], gpu, lane="gpu" if gpu_job else "cpu",
                                  idle=software.get("worker_idle_seconds"))
    else:
        run_here(stage, kwargs, smk.log[0], gpu_job)
    if os.environ.get(JOB_TIMES_VARIABLE):
        record_job_time(os.environ[JOB_TIMES_VARIABLE], {
            "stage": stage, "rule": smk.rule, "log": str(smk.log[0]), "gpu_job": gpu_job, "gpu": gpu,
            "worker": in_worker, "process_start": process_start_time(), "call_start": start, "end": time.time(),
            "worker_seconds": result.get("seconds"), "worker_pid": result.get("worker_pid"),
        })
