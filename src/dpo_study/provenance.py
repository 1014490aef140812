"""What produced a result: library versions, the code's git commit, a hash of the settings.

The tables carry these per experiment, so that two tables can be told apart (or shown to match)
without the run that made them.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The libraries whose versions decide a trained adapter and its answers.
LIBRARIES = ("torch", "transformers", "trl", "peft", "unsloth")
# Config sections that do not shape one experiment's results (parameters come in through the
# experiment itself; questions and the results folder only arrange outputs).
NOT_RESULT_SHAPING = ("experiments", "grids", "defaults", "questions", "results")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(code_file: str | Path = __file__) -> str:
    """The commit of the checkout that tracks ``code_file``, "+dirty" when tracked files are changed.

    "unknown (not a git checkout)" when the code is not tracked by git (an installed package, an
    exported archive), rather than the commit of some unrelated enclosing repository.
    """
    code_file = Path(code_file).resolve()

    def git(*args) -> str:
        return subprocess.run(
            ["git", "-C", str(code_file.parent), *args],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", code_file.name)
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def record() -> dict:
    """What a job records about the code that ran it."""
    return {"git_commit": git_commit(), **{f"{name}_version": v for name, v in library_versions().items()}}


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def settings_hash(settings) -> str:
    """A short, stable hash of JSON-able settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def experiment_config_hash(params: dict, config: dict) -> str:
    """The hash of everything in the config that shapes one experiment's results.

    Its parameters, every shared section (model, training, generation, judge, ... including
    sections added later), and the contents of its data files, so that an edited train.json
    gives a new hash under the same file name.
    """
    shared = {k: v for k, v in config.items() if k not in NOT_RESULT_SHAPING}
    if "software" in shared:  # where the GPU jobs run (a resident worker or not) does not shape results
        shared["software"] = {k: v for k, v in shared["software"].items() if k != "gpu_worker"}
    data = config.get("data", {})
    files = [data.get("train"), data.get("test"), *data.get("probes", [])]
    contents = {str(f): file_sha256(f) for f in files if f and Path(f).is_file()}
    return settings_hash({"params": params, "config": shared, "data_files": contents})
