"""One GPU per running job: a lock-file allocator that sets ``CUDA_VISIBLE_DEVICES``.

``--resources gpu=N`` lets Snakemake run N GPU jobs at once but does not say which GPU each job
may use, so without this every job would start on GPU 0. A job claims the first GPU whose lock it
can take (``flock`` on one file per GPU in a machine-local folder) and keeps it until the process
ends: the kernel drops the lock with the process, also when the job crashes or is killed.

The GPUs to share are those in ``CUDA_VISIBLE_DEVICES`` when it is set (a cluster's allocation, or
fake ids in tests), else those ``nvidia-smi`` lists. This module imports no torch: it must run
before anything initialises CUDA, which reads ``CUDA_VISIBLE_DEVICES`` once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "DPO_STUDY_GPU_LOCKS"
# Which share of its GPU a job claimed (software.jobs_per_gpu): 0 for the first, and when a GPU is not shared.
SHARE_VARIABLE = "DPO_STUDY_GPU_SHARE"
# How many jobs share each GPU (software.jobs_per_gpu): a job plans for its part of the GPU's memory.
SHARES_VARIABLE = "DPO_STUDY_GPU_SHARES"
_held: list = []  # open lock files: a lock lives as long as its file stays open
# How many CPU-stage workers a machine runs at most (default: one per usable core, at most CPU_WORKERS_MAX).
CPU_WORKERS_VARIABLE = "DPO_STUDY_CPU_WORKERS"
CPU_WORKERS_MAX = 4  # the report side has ~10 small jobs: more warm processes only cost memory
_cpu_slot: int | None = None  # the CPU-stage worker slot this process claimed


def visible_gpu_ids() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every GPU nvidia-smi sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [part.strip() for part in visible.split(",") if part.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def default_lock_dir() -> Path:
    """Machine-local (never the results folder, which a cluster shares between nodes)."""
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir(), f"dpo-study-gpus-{os.getuid()}"))


def _try_lock(lock_dir: Path, gpu: str, share: int = 0, kind: str = "gpu"):
    name = re.sub(r'[^A-Za-z0-9._-]', '_', gpu) + (f"-share{share}" if share else "")
    handle = open(lock_dir / f"{kind}-{name}.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def claim_gpu(lock_dir: str | Path | None = None, poll_seconds: float = 1.0, timeout: float | None = None,
              jobs_per_gpu: int = 1) -> str | None:
    """Take a free GPU (or a free share of one) for the rest of this process and make it the only one CUDA sees.

    Returns the claimed id, or None when there is no GPU (a CPU machine: nothing changes).
    ``jobs_per_gpu`` (``software.jobs_per_gpu``): that many jobs may share one GPU at once, each
    claiming a share of it (``SHARE_VARIABLE``), the GPUs' first shares before any second one. With a
    single GPU and no sharing there is nothing to claim and no lock is taken. When every GPU (and
    share) is taken (more GPU jobs than shares), waits for one to be released.
    """
    ids = visible_gpu_ids()
    os.environ[SHARE_VARIABLE] = "0"
    os.environ[SHARES_VARIABLE] = str(max(1, jobs_per_gpu))
    shares = [(gpu, share) for share in range(max(1, jobs_per_gpu)) for gpu in ids]
    if len(shares) <= 1:
        return ids[0] if ids else None
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    waited = False
    while True:
        for gpu, share in shares:
            handle = _try_lock(lock_dir, gpu, share)
            if handle is not None:
                _held.append(handle)
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                os.environ[SHARE_VARIABLE] = str(share)
                log.info("claimed GPU %s (share %d of %d) of %s (locks in %s)", gpu, share + 1, max(1, jobs_per_gpu),
                         ",".join(ids), lock_dir)
                return gpu
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"no free GPU among {ids} after {timeout:.0f} s (locks in {lock_dir})")
        if not waited:
            log.warning("all GPUs %s are taken by other jobs; waiting for one (locks in %s)", ids, lock_dir)
            waited = True
        time.sleep(poll_seconds)


def cpu_workers(environ=os.environ) -> int:
    """``DPO_STUDY_CPU_WORKERS``, else one per usable core, at most CPU_WORKERS_MAX."""
    if environ.get(CPU_WORKERS_VARIABLE):
        return max(1, int(environ[CPU_WORKERS_VARIABLE]))
    return max(1, min(CPU_WORKERS_MAX, len(os.sched_getaffinity(0))))


def claim_cpu_slot(pinned: bool, workers: int | None = None, lock_dir: str | Path | None = None,
                   poll_seconds: float = 0.1) -> int:
    """A CPU-stage worker's slot (0 .. workers-1) for the rest of this process, so that the report's
    jobs run side by side, each in a warm worker. ``pinned`` (the per-answer measures): slot 0 only,
    whose worker keeps the sentence encoder loaded; the others take a free slot, slot 0 last. Waits
    while the slots it may take are all taken. With one worker there is nothing to claim."""
    global _cpu_slot
    workers = cpu_workers() if workers is None else workers
    if _cpu_slot is not None or workers <= 1:
        return _cpu_slot or 0
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = [0] if pinned else [*range(1, workers), 0]
    while True:
        for slot_number in order:
            handle = _try_lock(lock_dir, "worker", slot_number, kind="cpu")
            if handle is not None:
                _held.append(handle)
                _cpu_slot = slot_number
                return slot_number
        time.sleep(poll_seconds)


def gpu_shares() -> int:
    """How many jobs share this process's GPU (1 when it is not shared, or nothing was claimed)."""
    return max(1, int(os.environ.get(SHARES_VARIABLE) or 1))


def claimed_share() -> int:
    """The share of its GPU this process claimed (0 when the GPU is not shared)."""
    return int(os.environ.get(SHARE_VARIABLE) or 0)
