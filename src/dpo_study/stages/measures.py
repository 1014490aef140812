"""Everything measured per answer, once per answer file (one model, one prompt set).

The job ``measure_base``/``measure_aligned`` reads ``.../responses/<set>.jsonl`` and writes
``.../measures/<set>.parquet`` beside it (keyed like the answers it measures): the text measures,
relevance, the collapse flag and validity of every answer (``dpo_study.analysis.metrics``), none of which
needs a judge. The tables job only joins these files with the judges' stances and the rewards, so
adding an experiment measures only its own answers. Parquet keeps each column's type exactly (the
nullable flags, every float bit), so a joined table is the one a single process would compute.

Relevance contrasts an answer with every prompt the model answered (all prompt sets, in the
study's order): the job reads every prompt file, and its sentence encoder is loaded once per
process (a resident worker keeps it across jobs).
"""

from __future__ import annotations

import functools

import pandas as pd

from dpo_study.analysis import metrics
from dpo_study.config import artifacts, atomic
from dpo_study.stages.data import read_jsonl

# What a measure file holds beside ``id``, in this order (the join in dpo_study.stages.tables reads them all).
MEASURE_COLUMNS = ["chars", "length_limit", "within_limit", "answer_script", "expected_script", "language_match",
                   "hedges", "refusal", "distinct_1", "distinct_2", "repetition", "asks_for_balance", "tokens",
                   "relevance", "collapsed", "off_topic", "wrong_language", "truncated", "valid"]


@functools.lru_cache(maxsize=2)
def _loaded_encoder(model_path: str | None):
    from dpo_study.stages.judge import load_sentence_encoder

    return load_sentence_encoder(model_path)


def sentence_encoder(model_path: str | None, batch_size: int = 64):
    """``encode(texts)`` -> unit-length embeddings from a local sentence-transformers folder (None:
    the bundled all-MiniLM-L6-v2). The parse-time checks (input_checks) have made sure that the
    packages are installed and that a model_path is a folder. Loaded once per process.
    ``batch_size`` 1: each text's embedding is its own (a padded batch moves the last bits)."""
    model = _loaded_encoder(model_path)
    return lambda texts: model.encode(list(texts), normalize_embeddings=True, batch_size=batch_size,
                                      show_progress_bar=False)


@functools.lru_cache(maxsize=4)
def _prompt_vectors(model_path: str | None, prompts: tuple[str, ...]):
    return sentence_encoder(model_path)(prompts)


def prompt_encoder(model_path: str | None):
    """``sentence_encoder`` for the prompts: every answer file of a study has the same background,
    so a resident worker encodes it once (the same batches, so the same vectors)."""
    return lambda texts: _prompt_vectors(model_path, tuple(texts))


def with_expected_script(rows: pd.DataFrame) -> pd.Series:
    systems = rows["system"].fillna("") if "system" in rows else pd.Series("", index=rows.index)
    languages = rows["language"] if "language" in rows else pd.Series(None, index=rows.index)
    return pd.Series([metrics.expected_script(p, s, lang) for p, s, lang in zip(rows["prompt"], systems, languages)],
                     index=rows.index)


def background_prompts(prompt_tables: list[pd.DataFrame]) -> list[tuple[str, str]]:
    """(expected script, prompt) of every prompt the model answers, in the study's order."""
    pairs: list[tuple[str, str]] = []
    for table in prompt_tables:
        pairs += list(zip(with_expected_script(table), table["prompt"]))
    return pairs


def answer_measures(answers: pd.DataFrame, encode=None, background: list[tuple[str, str]] | None = None,
                    encode_answers=None) -> pd.DataFrame:
    """``id`` and MEASURE_COLUMNS of each answer (one row per answer, in order). Without ``encode``
    relevance is not assessed (NaN), so no answer is off topic; ``encode_answers``: see metrics.relevance."""
    out = pd.concat([answers[["id"]].reset_index(drop=True),
                     metrics.response_metrics(answers).reset_index(drop=True)], axis=1)
    out["tokens"] = answers["new_tokens"].to_numpy()
    out["relevance"] = (metrics.relevance(list(answers["prompt"]), list(answers["response"].fillna("")),
                                          list(out["expected_script"]), encode, background, encode_answers)
                        if encode else float("nan"))
    out["collapsed"] = metrics.collapsed(out)
    checked = out.assign(hit_max_new_tokens=answers["hit_max_new_tokens"].to_numpy()
                         if "hit_max_new_tokens" in answers else False)
    out = pd.concat([out, metrics.validity(checked)], axis=1)
    return out[["id", *MEASURE_COLUMNS]]


def read_answers(path: str) -> pd.DataFrame:
    """An answer file (a cut or edited line names the file and the line), ids as text."""
    table = pd.DataFrame(artifacts.read_jsonl_checked(path))
    table["id"] = table["id"].astype(str)
    return table


def measure_answers(responses: str, prompts: list[str], measures: str, relevance_model: str | None = None) -> None:
    """Stage: the measures of every answer of one answer file; ``prompts``: every prompt set's file
    (relevance's background, in the study's order); ``relevance_model``: the sentence-transformers
    folder (None: the bundled all-MiniLM-L6-v2)."""
    answers = read_answers(responses)
    background = background_prompts([pd.DataFrame(read_jsonl(path)) for path in prompts])
    # The answers in batches, as before (encoding each alone would make a score independent of the
    # file's other answers, whose padding moves the 4th decimal of about one score in a hundred, but
    # costs about 20 times the CPU time). The prompts' vectors are kept for the next file.
    table = answer_measures(answers, prompt_encoder(relevance_model), background, sentence_encoder(relevance_model))
    with atomic.atomic_path(measures) as temp:
        table.to_parquet(temp, index=False)


def read_measures(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)
