"""One resident worker process per GPU: GPU jobs run their stage in it instead of in a new process.

A Snakemake job that declares a GPU still claims its GPU (``dpo_study.gpus``), but then hands
``(stage, kwargs, log path)`` to the worker of that GPU and waits: the worker has imported the
libraries once and keeps the base model loaded (``dpo_study.resident``), so a job pays neither.
The job's exit status, its log file and its outputs are what they are without the worker.

- One worker per (Snakemake run, GPU): it is started by the first GPU job of the run on that GPU
  and ends when that run's Snakemake process ends, or after ``DPO_STUDY_WORKER_IDLE_SECONDS``
  (300) without a job. Two concurrent runs never share a worker.
- One worker serves one load plan (the model, and whether Unsloth patches the process): a job
  with another plan makes the worker exit and starts a fresh one.
- A job that fails fails alone: its traceback goes to its own log, and the worker puts the
  model back as freshly loaded before the next job. A worker that dies (crash, kill, a job whose
  own process was killed) is replaced by the next job.

This module imports no torch on the job's side: a job only talks to the worker.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import secrets
import select
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Client, Listener
from pathlib import Path

from dpo_study import gpus

log = logging.getLogger("dpo_study.worker")  # also when run as __main__

MODES = ("auto", "on", "off")
IDLE_VARIABLE = "DPO_STUDY_WORKER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 300
START_SECONDS = 300  # a worker that has not answered by then did not start
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def _address(folder: Path, name: str) -> str:
    # An abstract Unix socket (no file, gone with the process); the authkey keeps others out.
    return "\0dpo-study-worker-" + hashlib.sha1(f"{folder}/{name}".encode()).hexdigest()[:20]


# -- the job's side -------------------------------------------------------------------------------


def _read_info(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _kill_stale(info: dict | None) -> None:
    """A worker process that no longer answers is ended (only if it is ours: its command line says so)."""
    if info and alive(info["pid"]) and "dpo_study.worker" in _cmdline(info["pid"]):
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
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    idle = os.environ.get(IDLE_VARIABLE, str(DEFAULT_IDLE_SECONDS))
    with open(log_path, "a") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "dpo_study.worker", "--folder", str(folder), "--name", name,
             "--owner", str(owner), "--idle-seconds", idle],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # not in the job's process group: it outlives the job
        )
    end = time.monotonic() + START_SECONDS
    while time.monotonic() < end:
        info = _read_info(info_path)
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
        info = _read_info(folder / f"{name}.json")
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


# -- the worker's side ----------------------------------------------------------------------------


def plan_of(kwargs: dict) -> dict:
    """The load plan a job needs: the model, and whether Unsloth must patch the process first."""
    from dpo_study import backends
    from dpo_study.modeling import read_manifest

    manifest = read_manifest(kwargs["manifest"]) if kwargs.get("manifest") else None
    training = kwargs.get("training")
    unsloth = bool(manifest and training) and backends.plan_for_job(
        manifest, training, kwargs.get("model_settings", {})).backend == "unsloth"
    return {"model": manifest and manifest["path"], "unsloth": unsloth}


def import_stage(stage: str):
    import importlib

    module, _, function = stage.partition(":")
    return getattr(importlib.import_module(module), function)


def stage_arguments(func, kwargs: dict) -> dict:
    """The job's arguments; ``threads`` only for a stage that takes it."""
    import inspect

    if "threads" not in inspect.signature(func).parameters:
        kwargs = {k: v for k, v in kwargs.items() if k != "threads"}
    return kwargs


class Worker:
    def __init__(self, folder: Path, name: str, owner: int, idle_seconds: float):
        import torch

        from dpo_study import resident

        self.torch, self.resident = torch, resident
        self.folder, self.name, self.owner, self.idle_seconds = folder, name, owner, idle_seconds
        self.plan = None
        self.busy = None  # the connection of the job running now
        self.last_active = time.monotonic()
        self.jobs = 0
        # The torch seed a fresh process starts with: every job starts from it.
        self.initial_seed = torch.initial_seed()
        resident.enable()

    def exit(self, reason: str) -> None:
        log.info("worker %s exits: %s", self.name, reason)
        info = _read_info(self.folder / f"{self.name}.json")
        if info and info.get("pid") == os.getpid():
            (self.folder / f"{self.name}.json").unlink(missing_ok=True)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)

    def watch(self) -> None:
        """End the worker when its Snakemake run ended, its job's process died, or it idled too long."""
        while True:
            time.sleep(0.5)
            if not alive(self.owner):
                self.exit(f"its Snakemake run (pid {self.owner}) ended")
            busy = self.busy
            if busy is not None:
                try:  # the job's process sends nothing while it waits: readable means it is gone
                    readable, _, _ = select.select([busy.fileno()], [], [], 0)
                except (OSError, ValueError):
                    readable = []
                if readable and self.busy is busy:
                    self.exit("the process of the job it was running ended")
            elif time.monotonic() - self.last_active > self.idle_seconds:
                self.exit(f"idle for {self.idle_seconds:.0f} s")

    def serve(self) -> None:
        authkey = secrets.token_bytes(32)
        address = _address(self.folder, self.name)
        listener = Listener(address, family="AF_UNIX", authkey=authkey, backlog=64)
        info_path = self.folder / f"{self.name}.json"
        temporary = info_path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"pid": os.getpid(), "address": address, "authkey": authkey.hex(), "owner": self.owner}, handle)
        os.replace(temporary, info_path)
        threading.Thread(target=self.watch, daemon=True).start()
        log.info("worker %s (pid %d) serves GPU jobs of the Snakemake run %d", self.name, os.getpid(), self.owner)
        while True:
            try:
                connection = listener.accept()
            except Exception as error:  # a client that failed authentication, or went away
                log.warning("refused a connection: %r", error)
                continue
            with connection:
                self.handle(connection)
            self.last_active = time.monotonic()

    def handle(self, connection) -> None:
        try:
            request = connection.recv()
        except (OSError, EOFError):
            return
        self.last_active = time.monotonic()
        try:
            plan = plan_of(request["kwargs"])
        except Exception as error:
            connection.send({"status": "accepted"})
            connection.send({"status": "failed", "error": f"cannot plan the job: {error!r}"})
            return
        if self.plan is not None and plan != self.plan:
            connection.send({"status": "retire"})
            self.exit(f"a job needs another load plan ({plan}, this worker has {self.plan})")
        if self.plan is None:
            self.plan = plan
            if plan["unsloth"]:
                from dpo_study.backends import import_unsloth

                import_unsloth()
            log.info("load plan: %s", plan)
        connection.send({"status": "accepted"})
        self.busy = connection
        result = self.run_job(request)
        self.busy = None
        connection.send(result)

    def run_job(self, request: dict) -> dict:
        """The stage, as its own process would run it: its output and logging into its log file."""
        start = time.perf_counter()
        os.chdir(request["cwd"])
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with open(request["log"], "w", buffering=1) as job_log:
            os.dup2(job_log.fileno(), 1)
            os.dup2(job_log.fileno(), 2)
            logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True, format=LOG_FORMAT)
            log.info("running %s in the GPU worker (pid %d, job %d of this worker)",
                     request["stage"], os.getpid(), self.jobs + 1)
            self.torch.manual_seed(self.initial_seed)
            result = {"status": "done", "worker_pid": os.getpid()}
            try:
                func = import_stage(request["stage"])
                func(**stage_arguments(func, request["kwargs"]))
            except BaseException as error:  # also SystemExit/KeyboardInterrupt from a stage: the job fails
                traceback.print_exc()
                result = {"status": "failed", "error": "".join(traceback.format_exception_only(error)).strip()}
            finally:
                self.resident.reset()
                self.jobs += 1
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
                logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True, format=LOG_FORMAT)
        result.update(seconds=round(time.perf_counter() - start, 3), job=self.jobs,
                      resident=dict(self.resident.stats))
        log.info("%s: %s in %.2f s", request["stage"], result["status"], result["seconds"])
        return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    Worker(Path(args.folder), args.name, args.owner, args.idle_seconds).serve()


if __name__ == "__main__":
    main()
