"""Stages of the report: the summary, question, sweep and response tables (CSV + HTML).

The tables are computed in dpo_study.analysis.comparisons and .questions (statistics in dpo_study.analysis.statistics) and drawn as
HTML in dpo_study.stages.pages; every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

from dpo_study.config import atomic

from dpo_study.stages import pages
from dpo_study.analysis.comparisons import read_experiments, read_responses, sweep_table, swept_params
from dpo_study.analysis.questions import question_tables
from dpo_study.analysis.statistics import group_summary


def write_csv(table, path: Path | str) -> None:
    with atomic.atomic_path(path) as temp:
        table.to_csv(temp, index=False)


def write_summary_table(experiments: str, summary_csv: str, summary_html: str) -> None:
    """Stage: experiments × metrics, one row per seed group (mean ± sd over seeds)."""
    summary = group_summary(read_experiments(experiments))
    write_csv(summary, summary_csv)
    atomic.write_text(summary_html, pages.summary_page(summary))


def write_question_tables(experiments: str, responses: str, questions_dir: str, questions: list[dict]) -> None:
    """Stage: per homework question, ``<name>.csv`` and ``<name>.html`` side by side with the difference."""
    experiment_table, response_table = read_experiments(experiments), read_responses(responses)
    with atomic.atomic_path(questions_dir) as folder:
        folder.mkdir()
        for question, table in zip(questions, question_tables(questions, experiment_table, response_table)):
            table.to_csv(folder / f"{question['name']}.csv", index=False)
            (folder / f"{question['name']}.html").write_text(pages.question_page(question, table), encoding="utf-8")


def write_sweep_tables(experiments: str, sweeps_dir: str) -> None:
    """Stage: per swept parameter, ``<param>.csv`` (long form) and ``<param>.html`` (pivots)."""
    summary = group_summary(read_experiments(experiments))
    with atomic.atomic_path(sweeps_dir) as folder:
        folder.mkdir()
        for param in swept_params(summary):
            table = sweep_table(summary, param)
            table.to_csv(folder / f"{param}.csv", index=False)
            (folder / f"{param}.html").write_text(pages.sweep_page(param, table), encoding="utf-8")


def write_response_tables(responses: str, responses_dir: str) -> None:
    """Stage: per experiment, ``<experiment>.html``: every prompt's answer before and after DPO."""
    table = read_responses(responses)
    with atomic.atomic_path(responses_dir) as folder:
        folder.mkdir()
        for experiment, part in table.groupby("experiment", sort=False):
            (folder / f"{experiment}.html").write_text(pages.responses_page(experiment, part), encoding="utf-8")
