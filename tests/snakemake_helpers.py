"""Run the real workflow with the snakemake command line in a scratch working directory."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# How a workstation runs the study; a profile that chooses its own executor passes execution=().
LOCAL_EXECUTION = ("--cores", "2", "--resources", "gpu=1")


def workdir_with_config(path, overrides: dict, base="demo.yaml", name="study.yaml"):
    """A working directory whose config is ``config/<base>`` updated by ``overrides`` (top-level keys)."""
    path.mkdir(parents=True, exist_ok=True)
    for folder in ("data", "config"):
        link = path / folder
        if not link.exists():
            link.symlink_to(REPO / folder)
    config = yaml.safe_load((REPO / "config" / base).read_text())
    config.update(overrides)
    config_file = path / name
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_file


def snakemake_command(workdir, config_file, *args, execution=LOCAL_EXECUTION, snakefile=REPO / "Snakefile") -> list[str]:
    # args (targets too) before the options that take several values and would swallow them
    return [*SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), *args,
            "--configfile", str(config_file), *execution]


def snakemake_env(env=None) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}


def snakemake(workdir, config_file, *args, check=True, timeout=1800, env=None, execution=LOCAL_EXECUTION,
              snakefile=REPO / "Snakefile"):
    command = snakemake_command(workdir, config_file, *args, execution=execution, snakefile=snakefile)
    # A session of its own, so that a timeout ends snakemake's running jobs too, not only snakemake.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=snakemake_env(env), start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return result


def scheduled_jobs(dry_run_output: str) -> dict[str, int]:
    """The dry run's job-stats table as {rule: count}."""
    counts = {}
    table = dry_run_output.split("Job stats:")[-1]
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def only(paths):
    """The one path a glob finds (a study's artifact under its settings keys)."""
    (path,) = list(paths)
    return path


def study_prompts(results) -> "pd.DataFrame":
    """Every prompt of a finished study: its prompt sets joined (results/prompts/<set>.jsonl)."""
    import pandas as pd

    files = sorted(Path(results, "prompts").glob("*.jsonl"), key=lambda p: p.stem != "test")
    return pd.concat([pd.read_json(f, lines=True, dtype={"id": str}) for f in files], ignore_index=True)
