"""Input files (train, test, probes) and the preference pairs built from them."""

from __future__ import annotations

import json
from pathlib import Path

from dpo_study.config import artifacts, atomic, strategies
from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT, check_data_size, load_probes, load_rows
from dpo_study.config.errors import ConfigError



def split_counts(data_size: int, support_ratio: float) -> int:
    """How many of the first ``data_size`` rows prefer support: the homework's ``int(n * ratio)``."""
    return int(data_size * support_ratio)


def build_pairs(
    rows: list[dict],
    data_size: int,
    support_ratio: float,
    strategy: str = "swap",
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    context: strategies.StrategyContext | None = None,
) -> list[dict]:
    """Conversational preference pairs with the homework's semantics (no shuffle).

    Each pair records ``preferred`` (the stance of its chosen answer: the homework's rule, except
    where ``balanced`` overrides it) and ``strategy`` (for ``mix``, the one drawn for that row).
    """
    check_data_size(data_size, rows)
    if not 0 <= support_ratio <= 1:
        raise ConfigError(f"support_ratio: {support_ratio} is outside [0, 1]")
    build = strategies.get(strategy)
    context = context or strategies.StrategyContext()
    context.select(rows[:data_size])
    n_support = split_counts(data_size, support_ratio)
    pairs = []
    for index, row in enumerate(context.rows):
        preferred = "support" if index < n_support else "oppose"
        chosen, rejected = build(row, preferred, context)
        pairs.append(
            {
                "id": row["id"],
                "preferred": next((s for s in strategies.STANCES if row[s] == chosen), preferred),
                "strategy": context.picked.get(str(row["id"]), strategy),
                "prompt": [
                    {"role": "system", "content": system_prompt},
                    {"role": "user", "content": row["prompt"]},
                ],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return pairs


def heldout_pairs(rows: list[dict], data_size: int, support_ratio: float,
                  system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[dict]:
    """Pairs of the training rows an experiment does not train on (those after its first ``data_size``),
    preferring stances by the same rule, the other stance rejected: how far the learnt preference
    carries to rows it never saw (an over-fitted adapter scores its own pairs far better)."""
    rest = rows[data_size:]
    return build_pairs(rest, len(rest), support_ratio, "swap", system_prompt) if rest else []


def write_jsonl(rows: list[dict], path: str | Path) -> None:
    with atomic.atomic_path(path) as temp, temp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_pairs(train: str, pairs: str, data: dict, system_prompt: str, base_responses: str | None = None) -> None:
    """Stage: the preference pairs of one data parameter set (``Experiment.data_params``: data_size,
    support_ratio, strategy, and seed / mix_weights where they matter); ``base_responses``: the base
    model's answers to the training prompts, for strategies that reject them."""
    rows = load_rows(train, "train")
    context = strategies.StrategyContext(
        seed=data.get("seed", 0),
        mix_weights=data.get("mix_weights", {}),
        base_responses={r["id"]: r["response"] for r in artifacts.read_responses(
            base_responses, [r["id"] for r in rows], train)} if base_responses else {},
    )
    built = build_pairs(rows, data["data_size"], data["support_ratio"], data["strategy"], system_prompt, context)
    write_jsonl(built, pairs)


def prompt_record(row: dict, set_name: str, category: str, system_prompt: str) -> dict:
    record = {"id": str(row["id"]), "set": set_name, "category": category,
              "system": row.get("system", system_prompt), "prompt": row["prompt"]}
    if "language" in row:  # the language the answer should be in (the language-match measure)
        record["language"] = row["language"]
    return record


def prompt_records(test_rows: list[dict], probe_rows: list[dict], system_prompt: str) -> list[dict]:
    """The prompts every model answers: the test set, then the probes."""
    records = [prompt_record(row, "test", "test", system_prompt) for row in test_rows]
    records += [prompt_record(row, "probe", row["category"], system_prompt) for row in probe_rows]
    return records  # ids are unique: checked before any job (validation.check_prompt_ids)


def write_prompts(source: str, prompts: str, system_prompt: str, kind: str) -> None:
    """Stage: one prompt set as JSONL: the test prompts (``kind`` "test") or one probe file ("probe")."""
    if kind == "test":
        records = prompt_records(load_rows(source, "test"), [], system_prompt)
    else:
        records = prompt_records([], load_probes([source]), system_prompt)
    write_jsonl(records, prompts)


def write_train_prompts(train: str, prompts: str, system_prompt: str) -> None:
    """Stage: the training prompts as a prompt set, for the base model's own answers (``on_policy``)."""
    write_jsonl([prompt_record(row, "train", "train", system_prompt) for row in load_rows(train, "train")], prompts)
