"""Demo study wall time on this machine: a cold run, then a no-change re-run, side by side.

    python bench/demo_cpu.py                       # 4 experiments of config/demo.yaml in a scratch workdir
    python bench/demo_cpu.py --dry-run             # what would run (snakemake -n): a check of the command
    python bench/demo_cpu.py --gpu-worker off      # model jobs one process each (software.gpu_worker)
    python bench/demo_cpu.py --model-from WORKDIR  # start with WORKDIR's built demo model (not timed)

Prints both wall times and their ratio. The goals (issue 2): cold <= 10 min, re-run <= 15 s.
"""

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--gpu-worker", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--model-from", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpo-bench-") as scratch:
        workdir = Path(scratch)
        for folder in ("data", "config"):
            (workdir / folder).symlink_to(REPO / folder)
        overlay = workdir / "overlay.yaml"
        overlay.write_text(yaml.safe_dump({"software": {"gpu_worker": args.gpu_worker}}))
        if args.model_from:  # the built model and Snakemake's record of it, so that it is not rebuilt
            shutil.copytree(args.model_from / "results/models", workdir / "results/models", symlinks=True)
            shutil.copytree(args.model_from / ".snakemake/metadata", workdir / ".snakemake/metadata")
        extra = ["-n"] if args.dry_run else []
        cold = snakemake(workdir, overlay, *extra)
        rerun = snakemake(workdir, overlay, *extra)
    print(f"cold run{' (demo model built before)' if args.model_from else ''}, gpu_worker {args.gpu_worker}: "
          f"{cold:.1f} s (goal <= 600 s)")
    print(f"no-change re-run: {rerun:.1f} s (goal <= 15 s)")
    print(f"cold / re-run: {cold / rerun:.0f}x")


if __name__ == "__main__":
    main()
