"""Demo study wall time on this machine: a cold run, then a no-change re-run, per worker mode.

    python bench/demo_cpu.py                          # config/demo.yaml in a scratch workdir (gpu_worker auto)
    python bench/demo_cpu.py --gpu-worker off on      # side by side: model jobs one process each, then the worker
    python bench/demo_cpu.py --dry-run                # what would run (snakemake -n): a check of the command
    python bench/demo_cpu.py --model-from WORKDIR     # start with WORKDIR's built demo model (not timed)
    python bench/demo_cpu.py --json OUT.json          # the figures, for BENCHMARKS.md
    python bench/demo_cpu.py --add-one                # then one more experiment added to the finished study

``--add-one`` (issue 20): after the no-change re-run, the study's experiments plus one (``ADDED``) in
the same workdir, timed; with ``DPO_STUDY_JOB_TIMES`` each job's wall time is summed per rule.

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
ADDED = {"name": "added_learning_rate_1e-3", "learning_rate": 1.0e-3}  # the experiment --add-one adds
TIMING_FILE = "job_times.jsonl"


def snakemake(workdir: Path, overlay: Path, *extra: str) -> float:
    start = time.perf_counter()
    # The workers of this benchmark in a folder of its own (they outlive each run; stopped at the end).
    env = {**os.environ, "DPO_STUDY_JOB_TIMES": str(workdir / TIMING_FILE),
           "DPO_STUDY_GPU_LOCKS": str(workdir.parent / "locks")}
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *extra,
         "--configfile", str(REPO / "config/demo.yaml"), str(overlay), "--cores", "all", "--resources", "gpu=1",
         "--quiet"],
        check=True, env=env,
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


def add_one(overlay: Path) -> None:
    """The overlay with the demo study's experiments and ``ADDED`` (a list in an overlay replaces the list)."""
    settings = yaml.safe_load(overlay.read_text())
    settings["experiments"] = [*yaml.safe_load((REPO / "config/demo.yaml").read_text())["experiments"], ADDED]
    overlay.write_text(yaml.safe_dump(settings, sort_keys=False))


def seconds_by_rule(workdir: Path, since: float) -> dict:
    """Each rule's jobs that ended after ``since`` (epoch s): their count and summed wall time."""
    path = workdir / TIMING_FILE
    rules: dict = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        job = json.loads(line)
        if job["end"] >= since:
            entry = rules.setdefault(job["rule"], {"jobs": 0, "seconds": 0.0})
            entry["jobs"] += 1
            entry["seconds"] = round(entry["seconds"] + job["end"] - (job["process_start"] or job["call_start"]), 1)
    return rules


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
    parser.add_argument("--add-one", action="store_true", help="then add one experiment to the finished study")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a scratch one)")
    args = parser.parse_args()
    extra = ["-n"] if args.dry_run else []
    runs = {}
    with tempfile.TemporaryDirectory(prefix="dpo-bench-") as scratch:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            scratch = str(args.keep.resolve())
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
            if args.add_one:
                add_one(overlay)
                since = time.time()
                added = snakemake(workdir, overlay, *extra)
                runs[mode].update(add_one_s=round(added, 1), add_one_jobs=seconds_by_rule(workdir, since))
                print(f"adding one experiment to the finished study: {added:.1f} s (goal <= 30 s)")
        subprocess.run([sys.executable, "-m", "dpo_study.runtime.worker", "stop"], cwd=REPO / "src",
                       env={**os.environ, "DPO_STUDY_GPU_LOCKS": str(Path(scratch) / "locks")}, check=False)
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
