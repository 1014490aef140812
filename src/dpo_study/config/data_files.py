"""The study's data files (train, test, probes, judge texts): read strictly, checked against their
schemas, before any job; errors name the file, the row and the field."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import yaml

from dpo_study.config import reading, strategies, texts, validation
from dpo_study.config.errors import ConfigError


DEFAULT_SYSTEM_PROMPT = "Your entire response must be 100 characters or less."


# The fields of each kind of file that reach a chat template.
TEXT_FIELDS = {"train": ("prompt", "support", "oppose"), "test": ("prompt",), "probes": ("prompt", "system"),
               "judge_texts": ("text", "prompt")}


@functools.lru_cache(maxsize=None)
def _schema(name: str) -> dict:
    text = resources.files("dpo_study").joinpath(f"schemas/{name}.schema.yaml").read_text()
    return yaml.load(text, Loader=reading.Loader)


def load_rows(path: str | Path, kind: str, special_tokens=None, what: str | None = None) -> list[dict]:
    """Read a JSON (or YAML, for probes) list and check it: its schema, unique visible ids, clean texts
    (dpo_study.config.texts) without chat-template control tokens (``special_tokens``: the pattern of
    the study's tokenizer, texts.special_token_pattern; the generic forms by default). Errors name
    file, row and field (``what``: the config field that names the file, for a file that is missing)."""
    path = Path(path)
    rows = reading.load(path, what or f"{kind} file")
    validation.check_rows(rows, _schema(kind), path)
    texts.check_texts(rows, TEXT_FIELDS[kind], path)
    if kind == "train":
        texts.check_pair_texts(rows, path)
    texts.check_no_special_tokens(rows, TEXT_FIELDS[kind], path, special_tokens)
    return rows


def load_probes(paths: list[str], special_tokens=None) -> list[dict]:
    """All probe files' rows in order (ids across files: validation.check_prompt_ids)."""
    return [row for path in paths for row in load_rows(path, "probes", special_tokens)]


def check_data_size(data_size: int, rows: list[dict], where: str = "data_size", path: str = "the training file") -> None:
    """The one bound on data_size: at least 1 row, at most the training file's rows."""
    if not 1 <= data_size <= len(rows):
        raise ConfigError(f"{where}: {data_size} is outside 1..{len(rows)} ({path} has {len(rows)} rows)")


def check_strategies(experiments: list, rows: list[dict], path: str) -> None:
    """Strategy and data combinations that cannot work, found before any job runs."""
    for experiment in experiments:
        params = experiment.params
        selected = rows[: params["data_size"]]
        n_ambiguous = sum(bool(row.get("ambiguous")) for row in selected)
        names = strategies.components(params["strategy"], params.get("mix_weights"))
        where = f"experiment {experiment.name!r}"
        if any(strategies.get(name).needs_ambiguous_rows for name in names) and n_ambiguous == 0:
            raise ConfigError(
                f"{where}, field strategy: {params['strategy']!r} balances the stances of rows marked "
                f"'ambiguous: true', but none of the first {params['data_size']} rows of {path} is marked"
            )
        if params["strategy"] == "balanced" and n_ambiguous == len(selected) and params["support_ratio"] != 0:
            raise ConfigError(
                f"{where}, field support_ratio: has no effect with strategy 'balanced' when all of the first "
                f"{params['data_size']} rows of {path} are ambiguous; leave it at 0"
            )
