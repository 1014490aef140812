"""One resident worker process per GPU: GPU jobs run their stage in it instead of in a new process.

A Snakemake job that declares a GPU still claims its GPU (``dpo_study.runtime.gpus``), but then hands
``(stage, kwargs, log path)`` to the worker of that GPU and waits: the worker has imported the
libraries once and keeps the base model loaded (``dpo_study.runtime.resident``), so a job pays neither.
The job's exit status, its log file and its outputs are what they are without the worker.

- One worker per (GPU, load plan, code version). Its name holds the GPU, the model and the code
  (``worker_keys.worker_name``): a job of another model gets another worker, and a code or library
  change (``code_key``: every module of this package, the Python and the installed distributions)
  another name, so a stale worker never runs a job. The rest of the plan (whether Unsloth patches
  the process) is made in the worker, which has torch up (``runner.worker_key``): a worker set up
  otherwise exits and the job starts a fresh one of the same name. A worker that
  starts on a GPU asks the other workers of that GPU to stop (after the job they run, if any), so
  that one model at a time holds the GPU's memory.
- It outlives the Snakemake run that started it, until ``software.worker_idle_seconds`` (600)
  without a job (``DPO_STUDY_WORKER_IDLE_SECONDS`` overrides it): the next run finds the model
  loaded. ``0``: it ends with its run (and serves that run only). Two runs on one machine share a
  worker only one job at a time (it serves one connection after the other, each job's GPU lock held).
- Stages that need no GPU but pay for their imports (pandas, scikit-learn, matplotlib) more than for
  their work: the per-answer measures (the sentence encoder loaded once), the tables' join, the
  submissions, the report and the findings (``CPU_STAGES``), run in a resident worker of their own
  (``LANES``), beside the GPU jobs, not between them: a changed study re-makes its report items
  in warm processes instead of a fresh Python per item. Up to one CPU-stage worker per core
  (``gpus.cpu_workers``, at most 4), each job claiming a free one, so that the report's items run
  side by side; the measures always take the first (``PINNED_STAGES``), which keeps the sentence
  encoder loaded: a second worker would load it again.
- A job that fails fails alone: its traceback goes to its own log, and the worker puts the
  model back as freshly loaded before the next job. A worker that dies (crash, kill, a job whose
  own process was killed) is replaced by the next job.

``python -m dpo_study.runtime.worker list`` lists the workers of this machine (``make workers``), ``... stop``
stops them (``make stop-workers``). This module is the job's side (finding, starting and talking to
a worker); the process itself is ``dpo_study.runtime.worker_process``. It imports no torch.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from multiprocessing.connection import Client
from pathlib import Path

from dpo_study.runtime import gpus
from dpo_study.runtime.runner import worker_key
from dpo_study.runtime.worker_keys import (  # noqa: F401 (IDLE_VARIABLE, DEFAULT_IDLE_SECONDS, alive: the worker's names)
    DEFAULT_IDLE_SECONDS,
    IDLE_VARIABLE,
    PACKAGE,
    alive,
    cmdline,
    code_key,
    idle_seconds,
    owner_pid,
    slot,
    worker_name,
)

MODES = ("auto", "on", "off")
# A folder, in a job's environment: the worker runs the job under cProfile and writes its stats
# there as NNN-<worker pid>-<stage>.prof (bench/study.py --profile-step: where a job's time goes).
PROFILE_VARIABLE = "DPO_STUDY_PROFILE_JOBS"
LANES = ("gpu", "cpu")  # GPU jobs (a GPU, or none on a CPU machine); CPU_STAGES
CPU_STAGES = (
    "dpo_study.stages.measures:measure_answers",
    "dpo_study.stages.tables:write_tables",
    "dpo_study.stages.tables:write_submission",
    "dpo_study.stages.aggregate:write_aggregates",
    "dpo_study.stages.findings:write_findings",
    "dpo_study.stages.report:write_summary_table",
    "dpo_study.stages.report:write_question_tables",
    "dpo_study.stages.report:write_sweep_tables",
    "dpo_study.stages.report:write_response_tables",
    "dpo_study.stages.plots:plot_training_curves",
    "dpo_study.stages.plots:plot_sweeps",
    "dpo_study.stages.plots:plot_length_vs_epochs",
    "dpo_study.stages.plots:plot_stance_heatmap",
)
PINNED_STAGES = ("dpo_study.stages.measures:measure_answers",)  # the first CPU-stage worker's only: its encoder
STOP_SECONDS = 600  # how long a starting worker waits for another of its GPU to finish its job and stop
START_SECONDS = 300  # a worker that has not answered by then did not start
PROCESS_MODULE = "dpo_study.runtime.worker_process"  # what ``python -m`` runs, and how a worker's command line is told


class WorkerError(RuntimeError):
    """The worker could not run the job (it did not start, or ended during the job)."""


class StageFailed(RuntimeError):
    """The stage raised inside the worker; its traceback is in the job's log."""


def enabled(mode: str | bool, environ=os.environ) -> bool:
    """``software.gpu_worker``: ``on``/``off`` (YAML's bare on/off are booleans); ``auto`` is on except
    inside a SLURM job, where each job is its own allocation and nothing is left to keep resident."""
    if isinstance(mode, bool):
        return mode
    if mode not in MODES:
        raise ValueError(f"gpu_worker: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "auto":
        return "SLURM_JOB_ID" not in environ
    return mode == "on"


def worker_dir() -> Path:
    folder = gpus.default_lock_dir() / "workers"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


# -- the job's side -------------------------------------------------------------------------------


def read_info(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _kill_stale(info: dict | None) -> None:
    """A worker process that no longer answers is ended (only if it is ours: its command line says so)."""
    if info and alive(info["pid"]) and PROCESS_MODULE in cmdline(info["pid"]):
        try:
            os.kill(info["pid"], 9)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < end:
        try:  # our own child: reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)


def _client(info: dict):
    return Client(info["address"], family="AF_UNIX", authkey=bytes.fromhex(info["authkey"]))


def _start(folder: Path, name: str, owner: int | None, idle: float, slot_name: str, plan: dict, code: str) -> dict:
    info_path = folder / f"{name}.json"
    info_path.unlink(missing_ok=True)
    log_path = folder / f"{name}.log"
    package_root = str(Path(__file__).resolve().parents[2])  # src/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    with open(log_path, "a") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", PROCESS_MODULE, "--folder", str(folder), "--name", name,
             "--owner", str(owner or 0), "--idle-seconds", str(idle), "--slot", slot_name,
             "--plan", json.dumps(plan), "--code", code],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # not in the job's process group: it outlives the job
        )
    end = time.monotonic() + START_SECONDS
    while time.monotonic() < end:
        info = read_info(info_path)
        if info and info.get("pid") == process.pid:
            return info
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise WorkerError(f"the GPU worker did not start (exit status {process.returncode}); "
                              f"its log {log_path} ends:\n{tail}")
        time.sleep(0.02)
    process.kill()
    raise WorkerError(f"the GPU worker did not start within {START_SECONDS} s; see {log_path}")


def workers(folder: Path | None = None) -> list[dict]:
    """The workers of this machine (this user, this lock folder) that are alive, with their names."""
    folder = folder or worker_dir()
    found = []
    for path in sorted(folder.glob("*.json")):
        info = read_info(path)
        if info and alive(info.get("pid", 0)) and PROCESS_MODULE in cmdline(info["pid"]):
            found.append({**info, "name": path.stem})
    return found


def ask(info: dict, command: str, timeout: float | None = 10) -> dict | None:
    """Send ``command`` (status, stop) to a worker; it answers after the job it runs. None: no answer."""
    try:
        with _client(info) as connection:
            connection.send({"command": command})
            if timeout is not None and not connection.poll(timeout):
                return None
            return connection.recv()
    except (OSError, EOFError):
        return None


def stop(info: dict, timeout: float = STOP_SECONDS) -> bool:
    """Stop one worker after the job it runs (killed if it does not answer); True once it is gone."""
    if ask(info, "stop", timeout) is None:
        _kill_stale(info)
    _wait_gone(info["pid"], 30)
    return not alive(info["pid"])


def _stop_others(folder: Path, name: str, slot_name: str) -> None:
    """The other workers of this slot (another plan, older code): one model at a time in a GPU's memory."""
    for info in workers(folder):
        if info["name"] != name and info.get("slot") == slot_name:
            stop(info)


def connect(folder: Path, name: str, owner: int | None, idle: float, slot_name: str, plan: dict, code: str):
    """A connection to the worker ``name``, started if there is none (under a lock)."""
    with open(folder / f"{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = read_info(folder / f"{name}.json")
        if info and alive(info["pid"]):
            try:
                return _client(info), info
            except (OSError, EOFError):
                _kill_stale(info)
        _stop_others(folder, name, slot_name)
        info = _start(folder, name, owner, idle, slot_name, plan, code)
        return _client(info), info


def run_stage(stage: str, kwargs: dict, log_path: str, gpu: str | None, owner: int | None = None,
              lane: str = "gpu", idle: float | None = None) -> dict:
    """Run ``stage`` (``"module:function"``) in the worker for ``gpu`` (``lane`` "cpu": the CPU
    stages' worker) and this job's load plan; raise if it fails there. ``idle``: the configured
    idle seconds (``software.worker_idle_seconds``); ``owner``: the run a worker that ends with its
    run belongs to (found when not given)."""
    idle = idle_seconds(idle)
    owner = (owner or owner_pid()) if idle == 0 else None
    plan = worker_key(kwargs)
    slot_name = slot(gpu, lane, gpus.claimed_share() if lane == "gpu" else gpus.claim_cpu_slot(stage in PINNED_STAGES))
    code = code_key()  # reads every module of the package: once a job
    folder, name = worker_dir(), worker_name(slot_name, plan, code, owner)
    request = {"stage": stage, "kwargs": kwargs, "log": str(Path(log_path).resolve()), "cwd": os.getcwd(),
               "client": os.getpid(), "profile": os.environ.get(PROFILE_VARIABLE),
               "gpu_shares": os.environ.get(gpus.SHARES_VARIABLE)}
    for _ in range(5):
        connection, info = connect(folder, name, owner, idle, slot_name, plan, code)
        try:
            connection.send(request)
            answer = connection.recv()
        except (OSError, EOFError):
            continue  # it ended before taking the job (idle timeout, a kill, a stop): start another
        if answer["status"] == "retire":  # another load plan: a fresh process for this one
            connection.close()
            _wait_gone(info["pid"])
            continue
        try:
            result = connection.recv()
        except (OSError, EOFError):
            message = (f"the GPU worker (pid {info['pid']}) ended during this job; "
                       f"its own log: {folder / (name + '.log')}")
            with open(log_path, "a") as job_log:
                job_log.write(f"\n{message}\n")
            raise WorkerError(message) from None
        finally:
            connection.close()
        if result["status"] != "done":
            raise StageFailed(f"{stage} failed in the GPU worker (pid {info['pid']}): {result['error']} "
                              f"(traceback in {log_path})")
        return result
    raise WorkerError(f"no GPU worker took the job after 5 attempts; see {folder / (name + '.log')}")


# -- listing and stopping (python -m dpo_study.runtime.worker list|stop) ----------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dpo_study.runtime.worker",
                                     description="The resident workers of this machine (this user).")
    parser.add_argument("command", choices=["list", "stop"])
    parser.add_argument("names", nargs="*", help="stop: only these workers (default: all)")
    args = parser.parse_args(argv)
    found = workers()
    if args.command == "list":
        if not found:
            print(f"no worker is running (folder {worker_dir()})")
        for info in found:
            status = ask(info, "status", timeout=1) or {}
            state = (f"idle {status['idle_s']:.0f} s of {status['idle_limit_s']:.0f} s" if status
                     else "busy (answers after its job)")
            print(f"{info['name']}  pid {info['pid']}  {info.get('slot')}  model {(info.get('plan') or {}).get('model')}"
                  f"  jobs {status.get('jobs', '?')}  {state}"
                  f"{'  ends with run ' + str(info['owner']) if info.get('owner') else ''}")
        return
    chosen = [info for info in found if not args.names or info["name"] in args.names]
    for info in chosen:
        print(f"{info['name']} (pid {info['pid']}): {'stopped' if stop(info) else 'still running'}")


if __name__ == "__main__":
    main()
