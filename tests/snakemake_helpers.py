"""Run the real workflow with the snakemake command line in a scratch working directory."""

import os
import re
import signal
import subprocess
import sys
from base64 import urlsafe_b64encode
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


def study_outputs(workdir, config_file, snakefile=REPO / "Snakefile") -> list[str]:
    """Every output path of the study that ``config_file`` describes (`snakemake --summary`), relative
    to the working directory; the workflow has no checkpoints, so the list does not depend on what exists."""
    result = snakemake(workdir, config_file, "--summary", execution=(), snakefile=snakefile)
    return [line.split("\t")[0] for line in result.stdout.splitlines()[1:] if "\t" in line]


def snakemake_record(workdir, kind: str, path: str) -> Path:
    """Where Snakemake keeps its record of ``path`` (kind "metadata" or "incomplete"), as
    snakemake/persistence/file.py names it: the path in URL-safe base64, in segments of at most 254
    characters, each but the last a folder named with "@" first. (Should that change, reuse_outputs
    finds no records and copies nothing: a slower run, never a wrong one.)"""
    name = urlsafe_b64encode(path.encode()).decode()
    segments = [name[i:i + 254] for i in range(0, len(name), 254)]
    return Path(workdir, ".snakemake", kind, *("@" + s for s in segments[:-1]), segments[-1])


def reuse_outputs(source, workdir, config_file, only=("results/",)) -> list[str]:
    """Copy into ``workdir`` the outputs of the study of ``config_file`` that an earlier run left in
    ``source`` (another working directory), each with Snakemake's record of it: the params (code
    hashes among them) and the input files it was made with. A run in ``workdir`` then runs only the
    rest, and re-runs whatever those records show out of date, as in ``source`` itself. An output
    without a record, or marked incomplete, is not copied: Snakemake could not tell it is current.
    Nothing is copied while a Snakemake run holds ``source`` (a lock). ``only``: the outputs under
    these path prefixes. Returns the copied outputs."""
    import shutil

    source, workdir = Path(source), Path(workdir)
    if any((source / ".snakemake/locks").glob("*")):
        return []
    copied = []
    for path in study_outputs(workdir, config_file):
        if not path.startswith(only):
            continue
        record = snakemake_record(source, "metadata", path)
        incomplete = snakemake_record(source, "incomplete", path).exists()
        if not (source / path).exists() or not record.is_file() or incomplete:
            continue
        target = workdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / path).is_dir():
            shutil.copytree(source / path, target, symlinks=True)
        else:
            shutil.copy2(source / path, target)
        shutil.copystat(source / path, target)  # its time, as Snakemake compares it with its inputs'
        copy_record = snakemake_record(workdir, "metadata", path)
        copy_record.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record, copy_record)
        copied.append(path)
    return copied


def parse_study(workdir, config_file):
    """In-process, what `snakemake -n` checks before any job: workflow/rules/common.smk's load_study on
    the config that Snakemake builds (the Snakefile's config/config.yaml with the --configfile merged
    over it, as Snakemake merges them), its files named in common.smk's order, in ``workdir``. Raises
    the ConfigError that the command line shows as "Invalid study input"; returns the Study. (Snakemake
    reads the --configfile itself before the workflow: YAML that it refuses needs the command line.)"""
    import contextlib

    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    from dpo_study.config.study import load_study

    with contextlib.chdir(workdir):
        config = load_configfile("config/config.yaml")
        update_config(config, load_configfile(str(config_file)))
        schema = REPO / "workflow/schemas/config.schema.yaml"
        return load_study(config, [str(config_file), "config/config.yaml"], schema)
