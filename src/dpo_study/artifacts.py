"""Checks that a stage runs on what it reads from an earlier job: a file cut short, edited or left
from other settings stops the job with its name and how to rebuild it, instead of a table that
silently lacks rows.

Every job writes its outputs atomically (atomic.py), so these catch what happened after: a disk
that filled, a copy that was cut, a hand edit.
"""

from __future__ import annotations

import json
from pathlib import Path


class CorruptArtifact(RuntimeError):
    """An earlier job's output that does not hold what its parameters promise."""


def rebuild(path, rule: str) -> str:
    return (f"rebuild it: delete {path} and run the study again, or add `--forcerun {rule}` "
            "to the snakemake command")


def read_jsonl_checked(path, rule: str) -> list[dict]:
    """A JSONL artifact line by line; a cut or edited line names the file, the line and the rule."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorruptArtifact(f"{path}: line {number} is not a JSON row ({error.msg}); {rebuild(path, rule)}") from None
            if not isinstance(row, dict):
                raise CorruptArtifact(f"{path}: line {number} is not a JSON object; {rebuild(path, rule)}")
            rows.append(row)
    return rows


def responses_rule(path) -> str:
    """The rule that wrote a responses file, by where it lies."""
    path = Path(path)
    if path.parent.name == "base":
        return "generate_base_train" if path.name.startswith("train_") else "generate_base"
    return "generate_aligned"


def prompt_ids(prompts) -> list[str]:
    return [str(r["id"]) for r in read_jsonl_checked(prompts, "prepare_prompts")]


def read_responses(path, expected_ids, prompts) -> list[dict]:
    """A responses file that answers exactly the prompts ``expected_ids`` of ``prompts`` (each once)."""
    rule = responses_rule(path)
    rows = read_jsonl_checked(path, rule)
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
            f"{path}: {len(got)} answers for the {len(expected)} prompts of {prompts} ({detail}); {rebuild(path, rule)}"
        )
    return rows


def read_pairs(path, data_size: int) -> list[dict]:
    """A pairs file with one pair for each of the first ``data_size`` training rows."""
    rule = "prepare_pairs prepare_model_pairs"  # shared pairs, or those built from the model's answers
    rows = read_jsonl_checked(path, rule)
    incomplete = [i for i, r in enumerate(rows, 1) if not all(k in r for k in ("prompt", "chosen", "rejected"))]
    if len(rows) != data_size or incomplete:
        what = f"line {incomplete[0]} lacks prompt, chosen or rejected" if incomplete else (
            f"{len(rows)} pairs, but data_size {data_size} asks for {data_size}")
        raise CorruptArtifact(f"{path}: {what}; {rebuild(path, rule)}")
    return rows


def check_adapter(folder) -> None:
    """An adapter folder that PEFT can open: a readable config and complete safetensors files."""
    from safetensors import safe_open

    folder = Path(folder)
    hint = rebuild(folder, "train_adapter")
    try:
        json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CorruptArtifact(f"{folder}/adapter_config.json: cannot be read ({error}); {hint}") from None
    from dpo_study.modeling import require_safetensors

    require_safetensors(folder, "adapter folder")  # pickled weights are refused, not rebuilt
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="numpy") as weights:
                list(weights.keys())
        except Exception as error:  # safetensors raises its own error type for a cut file
            raise CorruptArtifact(f"{file}: not a complete safetensors file ({error}); {hint}") from None
