"""One resident worker process per GPU: GPU jobs run their stage in it instead of in a new process.

A Snakemake job that declares a GPU still claims its GPU (``dpo_study.runtime.gpus``), but then hands
``(stage, kwargs, log path)`` to the worker of that GPU and waits: the worker has imported the
libraries once and keeps the base model loaded (``dpo_study.runtime.resident``), so a job pays neither.
The job's exit status, its log file and its outputs are what they are without the worker.

- One worker per (Snakemake run, GPU): it is started by the first GPU job of the run on that GPU
  and ends when that run's Snakemake process ends, or after ``DPO_STUDY_WORKER_IDLE_SECONDS``
  (300) without a job. Two concurrent runs never share a worker.
- One worker serves one load plan (the model, and whether Unsloth patches the process): a job
  with another plan makes the worker exit and starts a fresh one.
- A job that fails fails alone: its traceback goes to its own log, and the worker puts the
  model back as freshly loaded before the next job. A worker that dies (crash, kill, a job whose
  own process was killed) is replaced by the next job.

This module is the job's side (finding, starting and talking to the worker of a GPU); the process
itself is ``dpo_study.runtime.worker_process``. It imports no torch: a job only talks to the worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from multiprocessing.connection import Client
from pathlib import Path

from dpo_study.runtime import gpus

MODES = ("auto", "on", "off")
IDLE_VARIABLE = "DPO_STUDY_WORKER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 300
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


# -- which worker ---------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _is_snakemake(args: list[str]) -> bool:
    if any(Path(a).name == "snakemake" for a in args):
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(args, args[1:]))


def owner_pid() -> int:
    """The Snakemake process that runs this job (the nearest ancestor that is one), else the parent."""
    pid = os.getppid()
    while pid and pid > 1:
        if _is_snakemake(_cmdline(pid)):
            return pid
        pid = _parent(pid)
    return os.getppid()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_dir() -> Path:
    folder = gpus.default_lock_dir() / "workers"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def worker_name(owner: int, gpu: str | None) -> str:
    device = "cpu" if gpu is None else "gpu-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in gpu)
    return f"run-{owner}-{device}"


# -- the job's side -------------------------------------------------------------------------------


def read_info(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _kill_stale(info: dict | None) -> None:
    """A worker process that no longer answers is ended (only if it is ours: its command line says so)."""
    if info and alive(info["pid"]) and PROCESS_MODULE in _cmdline(info["pid"]):
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


def _start(folder: Path, name: str, owner: int) -> dict:
    info_path = folder / f"{name}.json"
    info_path.unlink(missing_ok=True)
    log_path = folder / f"{name}.log"
    package_root = str(Path(__file__).resolve().parents[2])  # src/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    idle = os.environ.get(IDLE_VARIABLE, str(DEFAULT_IDLE_SECONDS))
    with open(log_path, "a") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", PROCESS_MODULE, "--folder", str(folder), "--name", name,
             "--owner", str(owner), "--idle-seconds", idle],
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


def _connect(folder: Path, name: str, owner: int):
    """A connection to this run's worker for this GPU, started if there is none (under a lock)."""
    with open(folder / f"{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = read_info(folder / f"{name}.json")
        if info and alive(info["pid"]):
            try:
                return Client(info["address"], family="AF_UNIX", authkey=bytes.fromhex(info["authkey"])), info
            except (OSError, EOFError):
                _kill_stale(info)
        info = _start(folder, name, owner)
        return Client(info["address"], family="AF_UNIX", authkey=bytes.fromhex(info["authkey"])), info


def run_stage(stage: str, kwargs: dict, log_path: str, gpu: str | None, owner: int | None = None) -> dict:
    """Run ``stage`` (``"module:function"``) in this run's worker for ``gpu``; raise if it fails there."""
    owner = owner or owner_pid()
    folder, name = worker_dir(), worker_name(owner, gpu)
    request = {"stage": stage, "kwargs": kwargs, "log": str(Path(log_path).resolve()), "cwd": os.getcwd(),
               "client": os.getpid()}
    for _ in range(5):
        connection, info = _connect(folder, name, owner)
        try:
            connection.send(request)
            answer = connection.recv()
        except (OSError, EOFError):
            continue  # it ended before taking the job (idle timeout, a kill): start another
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
