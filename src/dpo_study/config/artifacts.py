"""Checks that a stage runs on what it reads from an earlier job: a file cut short, edited or left
from other settings stops the job with its name and how to rebuild it, instead of a table that
silently lacks rows.

Every job writes its outputs atomically (atomic.py), so these catch what happened after: a disk
that filled, a copy that was cut, a hand edit.
"""

from __future__ import annotations

import json
from pathlib import Path

from dpo_study.config.errors import ConfigError


class CorruptArtifact(ConfigError):
    """An earlier job's output that does not hold what its parameters promise."""


def rebuild(path, before_any_job: bool = False) -> str:
    """How to rebuild ``path``: --forcerun with the path re-runs exactly the job that writes it and what
    follows (a rule name would re-run that rule's jobs of every experiment)."""
    if before_any_job:  # the check runs at parse time, so the bad file has to go first
        return f"rebuild it: delete {path}, then add `--forcerun {path}` to the snakemake command"
    return f"rebuild it: add `--forcerun {path}` to the snakemake command (or delete it and run with that flag)"


def read_jsonl_checked(path) -> list[dict]:
    """A JSONL artifact line by line; a cut or edited line names the file and the line."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorruptArtifact(f"{path}: line {number} is not a JSON row ({error.msg}); {rebuild(path)}") from None
            if not isinstance(row, dict):
                raise CorruptArtifact(f"{path}: line {number} is not a JSON object; {rebuild(path)}")
            rows.append(row)
    return rows


def prompt_ids(prompts) -> list[str]:
    return [str(r["id"]) for r in read_jsonl_checked(prompts)]


def read_responses(path, expected_ids, prompts) -> list[dict]:
    """A responses file that answers exactly the prompts ``expected_ids`` of ``prompts`` (each once)."""
    rows = read_jsonl_checked(path)
    expected = [str(i) for i in expected_ids]
    got = [str(r.get("id")) for r in rows]
    if sorted(got) != sorted(expected):
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        repeated = sorted({i for i in got if got.count(i) > 1})
        detail = "; ".join(part for part in (
            f"missing ids {missing[:10]}{' ...' if len(missing) > 10 else ''}" if missing else "",
            f"ids not in {prompts}: {extra[:10]}" if extra else "",
            f"repeated ids {repeated[:10]}" if repeated else "",
        ) if part)
        raise CorruptArtifact(
            f"{path}: {len(got)} answers for the {len(expected)} prompts of {prompts} ({detail}); {rebuild(path)}"
        )
    return rows


def read_pairs(path, data_size: int) -> list[dict]:
    """A pairs file with one pair for each of the first ``data_size`` training rows."""
    rows = read_jsonl_checked(path)
    incomplete = [i for i, r in enumerate(rows, 1) if not all(k in r for k in ("prompt", "chosen", "rejected"))]
    if len(rows) != data_size or incomplete:
        what = f"line {incomplete[0]} lacks prompt, chosen or rejected" if incomplete else (
            f"{len(rows)} pairs, but data_size {data_size} asks for {data_size}")
        raise CorruptArtifact(f"{path}: {what}; {rebuild(path)}")
    return rows


def check_adapter(folder, before_any_job: bool = False) -> None:
    """An adapter folder that PEFT can open: a readable config and complete safetensors files (their
    headers read and their sizes checked, without the safetensors library)."""
    from dpo_study.config.model import require_safetensors, safetensors_names

    folder = Path(folder)
    hint = rebuild(folder, before_any_job)
    try:
        json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CorruptArtifact(f"{folder}/adapter_config.json: cannot be read ({error}); {hint}") from None
    require_safetensors(folder, "adapter folder")  # pickled weights are refused, not rebuilt
    for file in sorted(folder.glob("*.safetensors")):
        try:
            safetensors_names(file)
        except ConfigError as error:
            raise CorruptArtifact(f"{str(error).removesuffix('; replace the file')}; {hint}") from None


def check_finished_adapters(folders) -> None:
    """Parse time: every adapter folder already there must open. Snakemake dates a folder output by the
    folder, so a weights file cut inside it would be taken as finished ("Nothing to be done")."""
    for folder in folders:
        if Path(folder).is_dir():
            check_adapter(folder, before_any_job=True)


def manifest_files(manifest: dict) -> list[str]:
    """Every file a study manifest (``Study.tables_manifest``) names."""
    models = [manifest["base"], *manifest["experiments"]]
    return [*(e["summary"] for e in manifest["experiments"]),
            *(path for model in models for files in model["answers"].values() for path in files.values())]
