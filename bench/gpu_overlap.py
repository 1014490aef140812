"""Which GPU each training job of a finished study used, and whether jobs that ran at once shared one.

    python bench/gpu_overlap.py results/demo/runs

Exit status 0 when at least two jobs overlapped in time and every overlapping pair used different GPUs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(runs: str) -> int:
    jobs = []
    for summary in sorted(Path(runs).glob("*/train_summary.json")):
        data = json.loads(summary.read_text())
        jobs.append({"run": summary.parent.name, "gpu": data.get("gpu"), "start": data["started_at"],
                     "end": data["finished_at"]})
    origin = min(j["start"] for j in jobs)
    for job in jobs:
        print(f"GPU {job['gpu']}: {job['start'] - origin:6.1f} s .. {job['end'] - origin:6.1f} s  {job['run']}")
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:]
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    shared = [(a, b) for a, b in overlapping if a["gpu"] == b["gpu"]]
    print(f"{len(jobs)} training jobs, {len(overlapping)} pairs ran at once, {len(shared)} of them on one GPU")
    return 0 if overlapping and not shared else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
