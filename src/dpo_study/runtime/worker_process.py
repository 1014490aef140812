"""The resident worker process of one GPU, load plan and code version (``python -m dpo_study.runtime.worker_process``).

It is started by a job's side (``dpo_study.runtime.worker``, where the whole scheme is explained): it imports
the libraries once, keeps the base model loaded (``dpo_study.runtime.resident``) and runs the jobs handed to
it one after another, each with its output in its own log. It ends when idle too long, when asked
to stop (``python -m dpo_study.runtime.worker stop``), or, with no idle time, with its Snakemake run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import importlib
import json
import logging
import os
import secrets
import select
import sys
import threading
import time
import traceback
from multiprocessing.connection import Listener
from pathlib import Path

from dpo_study.runtime import gpus
from dpo_study.runtime.runner import LOG_FORMAT, job_plan, run_stage
from dpo_study.runtime.worker import read_info
from dpo_study.runtime.worker_keys import DEFAULT_IDLE_SECONDS, alive

log = logging.getLogger("dpo_study.runtime.worker_process")  # also when run as __main__


def socket_address(folder: Path, name: str) -> str:
    # An abstract Unix socket (no file, gone with the process); the authkey keeps others out. The pid
    # in it: a worker whose folder was deleted under it (its info file gone) must not keep the next
    # worker of its name from starting until it idles out.
    return "\0dpo-study-worker-" + hashlib.sha1(f"{folder}/{name}/{os.getpid()}".encode()).hexdigest()[:20]


class JobCollections:
    """Python's garbage collections around each job. At a job's start every object there is (the
    resident model, the libraries, the caches) is frozen, so a collection during the job walks only
    the job's own objects. At its end the job's garbage is collected (reference cycles can hold GPU
    memory) and the older objects are unfrozen. Before, each job ended with a full collection over
    the whole worker: an 8B model's GPU jobs ran 0.5-0.7 s faster each without it (BENCHMARKS.md,
    H100). Every collection is timed for the job's record."""

    def __init__(self):
        self.seconds, self.full, self._started = 0.0, 0, None
        gc.callbacks.append(self._clock)

    def _clock(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self.full += info.get("generation") == 2
            self._started = None

    def start(self) -> tuple[float, int]:
        gc.freeze()
        return self.seconds, self.full

    def end(self, started: tuple[float, int], evicted: bool) -> dict:
        gc.collect()  # the job's objects only: the older ones are still frozen
        gc.unfreeze()
        if evicted:  # the dropped model was older than the job: only a full collection can free its cycles
            gc.collect()
            if sys.modules.get("torch") and sys.modules["torch"].cuda.is_initialized():
                sys.modules["torch"].cuda.empty_cache()
        return {"gc_seconds": round(self.seconds - started[0], 3), "gc_full_collections": self.full - started[1]}


class Worker:
    def __init__(self, folder: Path, name: str, owner: int, idle_seconds: float, slot: str = "", plan=None,
                 code: str = ""):
        import torch

        from dpo_study.runtime import resident

        self.torch, self.resident = torch, resident
        self.folder, self.name, self.owner = folder, name, owner
        # No idle time: the worker belongs to its run (owner), with the old in-run idle limit as a safety.
        self.idle_seconds = idle_seconds if idle_seconds > 0 else DEFAULT_IDLE_SECONDS
        self.slot, self.code, self.named_plan = slot, code, plan
        self.plan = None
        self.busy = None  # the connection of the job running now
        self.last_active = time.monotonic()
        self.jobs = 0
        self.collections = JobCollections()
        # The torch seed a fresh process starts with: every job starts from it.
        self.initial_seed = torch.initial_seed()
        resident.enable()

    def exit(self, reason: str) -> None:
        log.info("worker %s exits: %s", self.name, reason)
        info = read_info(self.folder / f"{self.name}.json")
        if info and info.get("pid") == os.getpid():
            (self.folder / f"{self.name}.json").unlink(missing_ok=True)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)

    def watch(self) -> None:
        """End the worker when its Snakemake run ended, its job's process died, or it idled too long."""
        while True:
            time.sleep(0.5)
            if self.owner and not alive(self.owner):
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
        address = socket_address(self.folder, self.name)
        listener = Listener(address, family="AF_UNIX", authkey=authkey, backlog=64)
        info_path = self.folder / f"{self.name}.json"
        temporary = info_path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"pid": os.getpid(), "address": address, "authkey": authkey.hex(), "owner": self.owner or None,
                       "slot": self.slot, "plan": self.named_plan, "code": self.code, "idle_seconds": self.idle_seconds,
                       "started": time.time()}, handle)
        os.replace(temporary, info_path)
        threading.Thread(target=self.watch, daemon=True).start()
        log.info("worker %s (pid %d) serves %s jobs (%s)", self.name, os.getpid(),
                 "CPU-stage" if self.slot.startswith("cpu") else "GPU",
                 f"of the Snakemake run {self.owner}" if self.owner else f"until idle for {self.idle_seconds:.0f} s")
        while True:
            try:
                connection = listener.accept()
            except Exception as error:  # a client that failed authentication, or went away
                log.warning("refused a connection: %r", error)
                continue
            with connection:
                self.handle(connection)

    def handle(self, connection) -> None:
        try:
            request = connection.recv()
        except (OSError, EOFError):
            return
        if request.get("gpu_shares"):  # the job's GPU shares: its memory plan (runtime.memory) divides by them
            os.environ[gpus.SHARES_VARIABLE] = request["gpu_shares"]
        if request.get("command") == "status":
            connection.send({"jobs": self.jobs, "idle_s": time.monotonic() - self.last_active,
                             "idle_limit_s": self.idle_seconds, "plan": self.plan})
            return
        if request.get("command") == "stop":
            connection.send({"status": "stopping"})
            self.exit("asked to stop")
        if request.get("command") == "warm":
            connection.send({"status": self.warm(request["kwargs"])})
            self.last_active = time.monotonic()
            return
        self.last_active = time.monotonic()
        try:
            # the job's one plan, made here (torch is up), handed to its stage (runtime.runner)
            job = job_plan(request["kwargs"])
        except Exception as error:
            connection.send({"status": "accepted"})
            connection.send({"status": "failed", "error": f"cannot plan the job: {error!r}"})
            return
        plan = job.process_key
        if self.plan is not None and plan != self.plan:
            connection.send({"status": "retire"})
            self.exit(f"a job needs another load plan ({plan}, this worker has {self.plan})")
        if self.plan is None:
            self.plan = plan
            log.info("load plan: %s", plan)
        connection.send({"status": "accepted"})
        self.busy = connection
        result = self.run_job(request, job)
        self.busy = None
        self.last_active = time.monotonic()
        connection.send(result)

    def warm(self, kwargs: dict) -> str:
        """Warm start (``dpo_study.runtime.warm``): load the base model a GPU job of ``kwargs`` would load,
        and import the stages, before the first job comes. A failure is only logged: that job then
        loads the model itself, and fails in its own log if it must."""
        start = time.perf_counter()
        try:
            job = job_plan(kwargs)
            if self.plan is None:
                self.plan = job.process_key
            elif job.process_key != self.plan:
                return f"not warmed: this worker serves another load plan ({self.plan})"
            if job.unsloth:  # Unsloth's trainer loads the model its own way: only its imports are warmed
                from dpo_study.runtime.backends import import_unsloth

                import_unsloth()
            elif job.load is not None:
                from dpo_study.runtime import modeling

                modeling.load_planned(job.load)
            for stage in ("dpo_study.stages.train", "dpo_study.stages.generate"):
                importlib.import_module(stage)
        except Exception as error:
            log.exception("warm start failed")
            return f"warm start failed: {error!r}"
        message = f"warmed in {time.perf_counter() - start:.1f} s (plan {job.process_key}, base model {job.load})"
        log.info("%s", message)
        return message

    def run_job(self, request: dict, plan) -> dict:
        """The stage, as its own process would run it (runtime.runner), from a freshly seeded torch."""
        start = time.perf_counter()
        os.chdir(request["cwd"])
        self.torch.manual_seed(self.initial_seed)
        result = {"status": "done", "worker_pid": os.getpid()}
        collected, evictions = self.collections.start(), self.resident.stats["evictions"]
        profile_dir = request.get("profile")  # the job's DPO_STUDY_PROFILE_JOBS (worker.PROFILE_VARIABLE)
        profiler = cProfile.Profile() if profile_dir else None
        if profiler:
            profiler.enable()
        try:
            run_stage(request["stage"], request["kwargs"], request["log"], plan,
                      note=f"running {request['stage']} in the resident worker {self.slot} (pid {os.getpid()}, "
                           f"job {self.jobs + 1} of this worker)")
        except BaseException as error:  # also SystemExit/KeyboardInterrupt from a stage: the job fails
            result = {"status": "failed", "error": "".join(traceback.format_exception_only(error)).strip()}
        finally:
            self.resident.reset()
            garbage = self.collections.end(collected, self.resident.stats["evictions"] > evictions)
            self.jobs += 1
            if profiler:
                profiler.disable()
                Path(profile_dir).mkdir(parents=True, exist_ok=True)
                function = request["stage"].rpartition(":")[2]
                profiler.dump_stats(Path(profile_dir) / f"{self.jobs:03d}-{os.getpid()}-{function}.prof")
        result.update(seconds=round(time.perf_counter() - start, 3), job=self.jobs,
                      resident=dict(self.resident.stats), **garbage)
        log.info("%s: %s in %.2f s", request["stage"], result["status"], result["seconds"])
        return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    parser.add_argument("--slot", default="")
    parser.add_argument("--plan", type=json.loads, default=None)
    parser.add_argument("--code", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    Worker(Path(args.folder), args.name, args.owner, args.idle_seconds, args.slot, args.plan, args.code).serve()


if __name__ == "__main__":
    main()
