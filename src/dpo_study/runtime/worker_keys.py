"""Which resident worker serves a job, and whose it is: the slot (a GPU or the CPU lane), the code
version, the name that holds them and the load plan, the Snakemake run that owns a worker that ends
with its run, and how long a worker waits idle. No sockets and no processes started here: that is
``dpo_study.runtime.worker`` (the job's side) and ``dpo_study.runtime.worker_process``."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

IDLE_VARIABLE = "DPO_STUDY_WORKER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600  # software.worker_idle_seconds' default (the config schema's too)


def cmdline(pid: int) -> list[str]:
    """A process's command line (empty once it is gone)."""
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
        if _is_snakemake(cmdline(pid)):
            return pid
        pid = _parent(pid)
    return os.getppid()


def alive(pid: int) -> bool:
    """A running process (a zombie, ended but not yet reaped by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def slot(gpu: str | None, lane: str = "gpu", share: int = 0) -> str:
    """Where a worker runs: one GPU (or ``no-gpu`` on a machine without one), or the CPU lane; a
    GPU's second and later shares (``software.jobs_per_gpu``) each have a worker of their own."""
    if lane == "cpu":  # the CPU-stage workers: one per claimed slot (gpus.claim_cpu_slot)
        return "cpu" + (f"-{share}" if share else "")
    name = "no-gpu" if gpu is None else "gpu-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in gpu)
    return name + (f"-share{share}" if share else "")


PACKAGE = Path(__file__).resolve().parents[1]  # src/dpo_study: every layer, not only runtime/


def code_key(package: Path = PACKAGE) -> str:
    """The code a worker runs: every module of this package (bytes), the Python, and the installed
    distributions (their dist-info folders name each one's version): any change, another worker.
    Only the folders that hold distributions count, by their names: a job's own entries of
    ``sys.path`` (its script's folder, a run's working directory) must not make another key."""
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    digest.update(f"{sys.executable}\0{platform.python_version()}".encode())
    # The set of names, not a list per folder: a Snakemake script job has site-packages twice on its
    # path (its preamble adds Snakemake's own), a process started with ``-m`` once.
    names = set()
    for entry in {os.path.realpath(entry or ".") for entry in sys.path}:
        try:
            names.update(n for n in os.listdir(entry) if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    digest.update("\0".join(sorted(names)).encode())
    return digest.hexdigest()[:12]


def worker_name(slot_name: str, plan: dict, code: str, owner: int | None = None) -> str:
    """(slot, load plan, code version), and the run that owns it when it ends with its run."""
    plan_key = hashlib.sha1(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:8]
    return f"{f'run-{owner}-' if owner else ''}{slot_name}-{plan_key}-{code}"


def idle_seconds(configured=None, environ=os.environ) -> float:
    """``DPO_STUDY_WORKER_IDLE_SECONDS``, else ``software.worker_idle_seconds``, else the default."""
    value = environ.get(IDLE_VARIABLE, configured if configured is not None else DEFAULT_IDLE_SECONDS)
    return float(value)
