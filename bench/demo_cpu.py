"""Demo study wall time on this machine: a cold run, then a no-change re-run, side by side.

    python bench/demo_cpu.py            # 4 experiments of config/demo.yaml in a scratch workdir

Prints both wall times and their ratio. The goals (issue 2): cold <= 10 min, re-run <= 15 s.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
         "--configfile", str(REPO / "config/demo.yaml"), "--cores", "all", "--resources", "gpu=1", "--quiet"],
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dpo-bench-") as scratch:
        workdir = Path(scratch)
        for folder in ("data", "config"):
            (workdir / folder).symlink_to(REPO / folder)
        cold = snakemake(workdir)
        rerun = snakemake(workdir)
    print(f"cold run: {cold:.1f} s (goal <= 600 s)")
    print(f"no-change re-run: {rerun:.1f} s (goal <= 15 s)")
    print(f"cold / re-run: {cold / rerun:.0f}x")


if __name__ == "__main__":
    main()
