"""How the dry run's time grows with the number of experiments.

    python bench/dag_scale.py                        # 100, 500, 1000 and 2000 experiments
    python bench/dag_scale.py --sizes 1000 2000 --json dag.json
    python bench/dag_scale.py --sizes 1000 --checkout /tmp/old --checkout .   # two checkouts, side by side
    python bench/dag_scale.py --tiny                 # 2 and 4 experiments: the smoke test

Each size is a scratch working directory holding config/demo.yaml with N experiments (distinct
beta, lora_r and learning_rate, named like the points of a grid, so N distinct runs sharing one set of
pairs) and no questions; the command timed is
what a user types to see what would run: ``snakemake all -n --cores 1 --resources gpu=1``. Prints
per size the wall and CPU seconds (of snakemake and its children) and the jobs the dry run lists,
and the seconds per experiment, so that growth beyond linear shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SIZES = (100, 500, 1000, 2000)
TINY_SIZES = (2, 4)
BETAS = (0.05, 0.1, 0.2, 0.5, 1.0)
LORA_RS = (8, 16, 32, 64)


def study_config(checkout: Path, experiments: int) -> dict:
    config = yaml.safe_load((checkout / "config/demo.yaml").read_text())
    # A sweep of beta x lora_r x learning_rate, named like the points of a grid: N distinct runs
    # sharing one preference-pair file.
    config["experiments"] = []
    for i in range(experiments):
        beta, lora_r, learning_rate = BETAS[i % 5], LORA_RS[i // 5 % 4], float(f"{i // 20 + 1}e-6")
        config["experiments"].append({
            "name": f"scale_beta-{beta}_lora_r-{lora_r}_learning_rate-{i // 20 + 1}e-6",
            "beta": beta, "lora_r": lora_r, "learning_rate": learning_rate,
        })
    config["questions"] = []
    return config


def dry_run(checkout: Path, workdir: Path, experiments: int) -> dict:
    config = workdir / "study.yaml"
    config.write_text(yaml.safe_dump(study_config(checkout, experiments), sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "-s", str(checkout / "Snakefile"), "-d", str(workdir), "all", "-n",
               "--configfile", str(config), "--cores", "1", "--resources", "gpu=1"]
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed for {experiments} experiments:\n{result.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)$", result.stdout, re.MULTILINE)
    return {
        "checkout": str(checkout),
        "experiments": experiments,
        "wall_s": round(wall, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "jobs": int(total.group(1)) if total else None,
        "load_1min_before": round(load_before, 2),
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="numbers of experiments")
    parser.add_argument("--tiny", action="store_true", help=f"sizes {TINY_SIZES}: a smoke test")
    parser.add_argument("--checkout", type=Path, action="append",
                        help="a checkout whose workflow is timed (repeat to compare; default: this one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = args.sizes or (TINY_SIZES if args.tiny else SIZES)
    checkouts = [path.resolve() for path in args.checkout or [REPO]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dpo-dag-") as scratch:
        for experiments in sizes:
            for index, checkout in enumerate(checkouts):
                workdir = Path(scratch, f"{experiments}-{index}")
                workdir.mkdir()
                for folder in ("data", "config"):
                    (workdir / folder).symlink_to(checkout / folder)
                row = dry_run(checkout, workdir, experiments)
                row["s_per_experiment"] = round(row["wall_s"] / experiments, 4)
                rows.append(row)
                print(f"{experiments:>6} experiments: {row['wall_s']:7.1f} s wall, {row['cpu_s']:7.1f} s CPU, "
                      f"{row['jobs']} jobs, {row['s_per_experiment'] * 1000:.1f} ms per experiment ({checkout})",
                      flush=True)
    load = os.getloadavg()
    print(f"load average after the run (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
            "cores": os.cpu_count(), "load_average": load, "python": platform.python_version(), "rows": rows,
        }, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
