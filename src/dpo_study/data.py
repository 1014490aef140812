"""Input files (train, test, probes) and the preference pairs built from them."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import yaml

from dpo_study import atomic, strategies, validation
from dpo_study.experiments import ConfigError

DEFAULT_SYSTEM_PROMPT = "Your entire response must be 100 characters or less."


def _schema(name: str) -> dict:
    text = resources.files("dpo_study").joinpath(f"schemas/{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_rows(path: str | Path, kind: str) -> list[dict]:
    """Read a JSON (or YAML, for probes) list and validate it; errors name file, row and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{kind} file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is harmless
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8") from None
    try:
        rows = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', None) or error}") from None
    validation.check_rows(rows, _schema(kind), path)
    if kind == "train":
        validation.check_pair_texts(rows, path)
    return rows


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
    """Conversational preference pairs with the homework's semantics (no shuffle)."""
    if not 1 <= data_size <= len(rows):
        raise ConfigError(
            f"data_size: {data_size} is outside 1..{len(rows)} (the training file has {len(rows)} rows)"
        )
    if not 0 <= support_ratio <= 1:
        raise ConfigError(f"support_ratio: {support_ratio} is outside [0, 1]")
    build = strategies.get(strategy)
    context = context or strategies.StrategyContext()
    n_support = split_counts(data_size, support_ratio)
    pairs = []
    for index, row in enumerate(rows[:data_size]):
        preferred = "support" if index < n_support else "oppose"
        chosen, rejected = build(row, preferred, context)
        pairs.append(
            {
                "id": row["id"],
                "preferred": preferred,
                "prompt": [
                    {"role": "system", "content": system_prompt},
                    {"role": "user", "content": row["prompt"]},
                ],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return pairs


def write_jsonl(rows: list[dict], path: str | Path) -> None:
    with atomic.atomic_path(path) as temp, temp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_pairs(train: str, pairs: str, data: dict, system_prompt: str) -> None:
    """Stage: the preference pairs of one data parameter set (data_size, support_ratio, strategy)."""
    rows = load_rows(train, "train")
    context = strategies.StrategyContext(seed=data.get("seed", 42))
    built = build_pairs(rows, data["data_size"], data["support_ratio"], data["strategy"], system_prompt, context)
    write_jsonl(built, pairs)


def prompt_records(test_rows: list[dict], probe_rows: list[dict], system_prompt: str) -> list[dict]:
    """The prompts every model answers: the test set, then the probes."""
    records = [
        {"id": str(row["id"]), "set": "test", "category": "test", "system": system_prompt,
         "prompt": row["prompt"]}
        for row in test_rows
    ]
    for row in probe_rows:
        records.append(
            {"id": row["id"], "set": "probe", "category": row["category"],
             "system": row.get("system", system_prompt), "prompt": row["prompt"]}
        )
    ids = [r["id"] for r in records]
    clash = sorted({i for i in ids if ids.count(i) > 1})
    if clash:
        raise ConfigError(f"probes: ids {clash} repeat a test id or another probe id")
    return records


def write_prompts(test: str, prompts: str, system_prompt: str, probes: list[str] = ()) -> None:
    """Stage: the combined prompt set (test prompts and probes) as JSONL."""
    probe_rows = [row for path in probes for row in load_rows(path, "probes")]
    write_jsonl(prompt_records(load_rows(test, "test"), probe_rows, system_prompt), prompts)
