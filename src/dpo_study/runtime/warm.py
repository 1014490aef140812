"""Warm start: the GPU worker a run will need starts loading as soon as the DAG is known.

Without it, the first GPU job of a run pays the worker's start (imports, the base model's load, the
GPU's warm-up) while Snakemake's CPU jobs before it (pairs, prompts, the judges' training, the model
manifest) have already run. The Snakefile's ``onstart`` hands this module the jobs the run will
execute (``pending_gpu_kwargs``); ``warm_start`` then starts, detached, a small process (``main``)
that waits for the model manifest, starts the worker that the first GPU job would start (same slot,
load plan and code key, so that job finds it) and asks it to load the base model. It returns at
once: nothing waits for the warm-up, and a warm-up that fails only leaves the first job to load as
before (the failure is in the warm-up's log, ``warm-start.log`` in the workers' folder).

Off where the worker is off (``software.gpu_worker``), on a cluster executor (each job its own
allocation, nothing to keep warm) and in a dry run (no ``onstart``). On a machine with several
GPUs it warms the first visible one, which the first GPU job claims when it is free.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from dpo_study.runtime import gpus, worker
from dpo_study.runtime.runner import LOG_FORMAT, worker_key
from dpo_study.runtime.worker_keys import alive, code_key, idle_seconds, slot, worker_name

log = logging.getLogger(__name__)

LOG_NAME = "warm-start.log"
MANIFEST_WAIT_SECONDS = 3600  # the model's download (resolve_model) may come first


def pending_gpu_kwargs(jobs) -> dict | None:
    """What the worker's load plan is computed from (the model manifest, the model settings and, for a
    training job, the training settings), taken from the jobs this run will execute (Snakemake's
    ``workflow.dag.needrun_jobs()``): a training job's first, since its plan decides whether Unsloth
    patches the process; None when the run has no GPU job."""
    gpu_jobs = [job for job in jobs if job.resources.get("gpu", 0)]
    gpu_jobs.sort(key=lambda job: "training" not in job.params.keys())
    for job in gpu_jobs:
        inputs, params = dict(job.input.items()), dict(job.params.items())
        if "manifest" in inputs:
            kwargs = {"manifest": str(inputs["manifest"]), "model_settings": params.get("model_settings")}
            if "training" in params:
                kwargs["training"] = params["training"]
            return kwargs
    return None


def warm_start(kwargs: dict | None, software: dict, local_exec: bool, owner: int | None = None) -> bool:
    """Start the warm-up of the worker for ``kwargs`` (``pending_gpu_kwargs``), detached; True if started."""
    if kwargs is None or not local_exec or not worker.enabled(software.get("gpu_worker", "auto")):
        return False
    idle = idle_seconds(software.get("worker_idle_seconds"))
    folder = worker.worker_dir()
    package_root = str(Path(__file__).resolve().parents[2])  # src/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
           gpus.SHARES_VARIABLE: str(max(1, software.get("jobs_per_gpu", 1)))}  # as the first GPU job will plan
    with open(folder / LOG_NAME, "a") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", __name__, "--kwargs", json.dumps(kwargs), "--idle-seconds", str(idle),
             "--owner", str(owner or os.getpid()), "--cwd", os.getcwd()],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # not in Snakemake's process group: a Ctrl-C there is not ours
        )
    return True


def wait_for(path: Path, owner: int, seconds: float = MANIFEST_WAIT_SECONDS) -> bool:
    """True once ``path`` exists; False if the run ends (or the wait runs out) first."""
    end = time.monotonic() + seconds
    while not path.exists():
        if not alive(owner) or time.monotonic() > end:
            return False
        time.sleep(0.5)
    return True


def warm(kwargs: dict, idle: float, owner: int) -> str:
    """Start (or find) the worker the first GPU job will use and have it load the base model."""
    manifest = Path(kwargs["manifest"]).resolve()  # the worker's own folder is not the run's
    if not wait_for(manifest, owner):
        return "no model manifest before the run ended: nothing warmed"
    kwargs = {**kwargs, "manifest": str(manifest)}
    ids = gpus.visible_gpu_ids()
    gpu = ids[0] if ids else None
    if len(ids) > 1:  # the worker sees its GPU alone, as the job that claims it would
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    plan = worker_key(kwargs)
    slot_name, code = slot(gpu, "gpu"), code_key()
    job_owner = owner if idle == 0 else None
    folder, name = worker.worker_dir(), worker_name(slot_name, plan, code, job_owner)
    connection, info = worker.connect(folder, name, job_owner, idle, slot_name, plan, code)
    with connection:
        connection.send({"command": "warm", "kwargs": kwargs, "gpu_shares": os.environ.get(gpus.SHARES_VARIABLE)})
        answer = connection.recv()
    return f"worker {name} (pid {info['pid']}): {answer['status']}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kwargs", type=json.loads, required=True)
    parser.add_argument("--idle-seconds", type=float, required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--cwd", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    os.chdir(args.cwd)  # the manifest's path is the run's
    try:
        log.info("warm start for the run %d: %s", args.owner, warm(args.kwargs, args.idle_seconds, args.owner))
    except Exception:  # the first GPU job then starts the worker and loads the model as without warm start
        log.exception("warm start for the run %d failed", args.owner)


if __name__ == "__main__":
    main()
