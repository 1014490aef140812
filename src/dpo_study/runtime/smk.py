"""The one bridge from a Snakemake rule to a stage function of this package.

Every rule's script is one line, ``call("dpo_study.<module>:<function>", snakemake)``: the rule's
named input, output and params become the function's keyword arguments, so each stage is a plain
function that tests call without Snakemake. Everything the stage prints or logs goes to the rule's
log file.

A job that declares a GPU (``resources: gpu=1``) first claims its own GPU, before anything starts
CUDA. Then, with ``software.gpu_worker`` on (``auto``: everywhere but inside a SLURM job), it hands the stage
to the resident worker of that GPU (``dpo_study.runtime.worker``), which keeps the libraries imported and
the base model loaded across jobs. Otherwise the stage runs in this process. Either way the one
stage runner (``dpo_study.runtime.runner``) runs it: the job's plan computed once, Unsloth imported
before the stage's module when the job trains with it, the settings groups (plain values in the
rule's params, so that Snakemake's params trigger compares them) rebuilt as the stage's annotations say.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

from dpo_study.runtime import gpus, runner, worker

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
# hash of the code the rule runs (dpo_study.config.provenance.code_version).
TRIGGER_PARAMS = ("code",)


def stage_kwargs(smk) -> dict:
    """Named input, output and params, and the job's threads (passed to stages that take them)."""
    params = {name: value for name, value in smk.params.items() if name not in TRIGGER_PARAMS}
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **params}
    return {**plain(kwargs), "threads": smk.threads}


def claim_gpu(jobs_per_gpu: int = 1) -> str | None:
    """This job's own GPU (``CUDA_VISIBLE_DEVICES``) or share of one, before anything starts CUDA."""
    gpu = gpus.claim_gpu(jobs_per_gpu=jobs_per_gpu)
    # Batches of varying length fragment the caching allocator; growable segments are PyTorch's
    # remedy (BENCHMARKS.md). Read when CUDA first allocates, so set before; a user's own setting is kept.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    return gpu


def run_here(stage: str, kwargs: dict, log_path: str, gpu_job: bool) -> None:
    """The stage in this process (a GPU job plans itself first: Unsloth may have to come first)."""
    runner.run_stage(stage, kwargs, log_path, plan_here=gpu_job)


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
    software = smk.config.get("software", {})
    gpu = claim_gpu(software.get("jobs_per_gpu", 1)) if gpu_job else None
    claimed = time.time()
    kwargs = stage_kwargs(smk)
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
            "worker_gc_seconds": result.get("gc_seconds"), "claim_seconds": round(claimed - start, 3),
        })
