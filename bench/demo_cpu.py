"""Demo study wall time on this machine: a cold run, then a no-change re-run, per worker mode.

    python bench/demo_cpu.py                          # config/demo.yaml in a scratch workdir (gpu_worker auto)
    python bench/demo_cpu.py --gpu-worker off on      # side by side: model jobs one process each, then the worker
    python bench/demo_cpu.py --dry-run                # what would run (snakemake -n): a check of the command
    python bench/demo_cpu.py --model-from WORKDIR     # start with WORKDIR's built demo model (not timed)
    python bench/demo_cpu.py --json OUT.json          # the figures, for BENCHMARKS.md

With several modes, the demo model is built once (untimed, unless --model-from gives it) and each
mode's study starts from it in a scratch workdir of its own, so that the modes differ only in the
worker. The goals (issue 2): cold <= 10 min, re-run <= 15 s; issue 13 asks for the demo study's
wall time with and without the worker, on one machine in one run.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, overlay: Path, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *extra,
         "--configfile", str(REPO / "config/demo.yaml"), str(overlay), "--cores", "all", "--resources", "gpu=1",
         "--quiet"],
        check=True,
    )
    return time.perf_counter() - start


def scratch_workdir(parent: Path, name: str, gpu_worker: str, model_from: Path | None) -> tuple[Path, Path]:
    workdir = parent / name
    workdir.mkdir()
    for folder in ("data", "config"):
        (workdir / folder).symlink_to(REPO / folder)
    overlay = workdir / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"software": {"gpu_worker": gpu_worker}}))
    if model_from:  # the built model and Snakemake's record of it, so that it is not rebuilt
        shutil.copytree(model_from / "results/models", workdir / "results/models", symlinks=True)
        shutil.copytree(model_from / ".snakemake/metadata", workdir / ".snakemake/metadata")
    return workdir, overlay


def built_model(parent: Path, dry_run: bool) -> Path | None:
    """A workdir holding the demo model only (its build is the same for every mode, and not timed)."""
    workdir, overlay = scratch_workdir(parent, "model", "off", None)
    snakemake(workdir, overlay, *(["-n"] if dry_run else []), "--until", "build_demo_model")
    return None if dry_run else workdir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--gpu-worker", nargs="+", default=["auto"], choices=["auto", "on", "off"])
    parser.add_argument("--model-from", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    extra = ["-n"] if args.dry_run else []
    runs = {}
    with tempfile.TemporaryDirectory(prefix="dpo-bench-") as scratch:
        model_from = args.model_from
        if model_from is None and len(args.gpu_worker) > 1:
            model_from = built_model(Path(scratch), args.dry_run)
        for mode in args.gpu_worker:
            workdir, overlay = scratch_workdir(Path(scratch), f"gpu_worker-{mode}", mode, model_from)
            cold = snakemake(workdir, overlay, *extra)
            rerun = snakemake(workdir, overlay, *extra)
            runs[mode] = {"cold_s": round(cold, 1), "rerun_s": round(rerun, 1)}
            print(f"cold run{' (demo model built before)' if model_from else ''}, gpu_worker {mode}: "
                  f"{cold:.1f} s (goal <= 600 s)")
            print(f"no-change re-run: {rerun:.1f} s (goal <= 15 s)")
            print(f"cold / re-run: {cold / rerun:.0f}x")
    if "off" in runs and "on" in runs:
        print(f"worker speed-up of the cold run (off / on): {runs['off']['cold_s'] / runs['on']['cold_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": args.dry_run,
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "load_average_at_end": os.getloadavg()},
            "model_built_before": model_from is not None, "runs": runs,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
