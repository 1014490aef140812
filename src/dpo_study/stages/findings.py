"""results/findings.md: the study's findings in the portfolio's four sections, every number computed.

1. hyperparameters (alignment, stability, fluency, over-fitting), 2. answer defects before and after
DPO with quoted cases, 3. rejected-example strategies and data, 4. robustness on probes. Each section
is one short paragraph, a compact table and, for section 2, quotes chosen by a stated rule.

What a sentence may claim: stance rates count valid answers only (dpo_study.analysis.metrics.validity), a
cell with mostly invalid answers is "no valid measurement", and a change is called an effect only
when its 95% interval over prompts excludes 0 (dpo_study.analysis.statistics), with the interval stated.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dpo_study.config import atomic
from dpo_study.analysis.cases import qualitative
from dpo_study.analysis.comparisons import (
    REASON_WORDS, count_test_prompts, prompt_categories, question_table, question_title, read_experiments,
    read_responses, row_change, side_estimate, stance_shift, sweep_lines, swept_params, valid, with_group,
)
from dpo_study.config.questions import TEST_CATEGORY, question_categories
from dpo_study.config.experiments import DATA_PARAMS, format_value
from dpo_study.analysis.labels import fmt, plural
from dpo_study.analysis.metrics import INVALID_REASONS
from dpo_study.stages.pages import html_page
from dpo_study.analysis.statistics import CONFIDENCE, Change, estimate, group_summary, percent, runs

# Section 3 holds what shapes the preference pairs; section 1 the training hyperparameters.
DATA_SECTION_PARAMS = tuple(DATA_PARAMS)


@dataclass
class Section:
    title: str
    sentences: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)  # header row first
    quotes: list[str] = field(default_factory=list)

    def add(self, *sentences: str) -> None:
        self.sentences += [s for s in sentences if s]

    @property
    def paragraphs(self) -> list[list[str]]:
        return [p for p in (self.sentences, self.quotes) if p]


# ---- sentences about a change --------------------------------------------------------------


def verdict(change: Change) -> str:
    """What a change can carry: an effect (interval excludes 0) or no established change."""
    if change.prompts == 0 or math.isnan(change.difference):
        return "no valid measurement"
    interval = change.interval_text()
    p = f"sign test p = {fmt(change.p_value)}" if not math.isnan(change.p_value) else ""
    if change.is_effect:
        return f"{fmt(change.difference, signed=True)} ({interval}; {p}): an effect"
    if change.interval_excludes_zero:
        return (f"{fmt(change.difference, signed=True)} ({interval}, but {p} over {plural(change.prompts, 'prompt')}): "
                "too few prompts to establish a change")
    return f"{fmt(change.difference, signed=True)} ({interval}, which includes 0): no established change"


def question_sentence(question: dict, table: pd.DataFrame, category: str = TEST_CATEGORY) -> str:
    rows = table[(table["category"] == category) & (table["metric"] == "support_rate")]
    if rows.empty:
        return ""
    row = rows.iloc[0]
    name = f"{question['name']} ({question_title(question)})"
    where = f"the {int(row['prompts'])} test prompts" if category == TEST_CATEGORY else \
        f"the {int(row['prompts'])} {category} probes"
    if not row["measured"]:
        return f"{name}: no valid measurement on {where} ({int(row['valid_pairs'])} valid answer pairs)."
    a, b = side_estimate(row, "a"), side_estimate(row, "b")
    return (f"{name}: after DPO the support rate over the valid answers to {where} is {a} for {row['a_group']} and "
            f"{b} for {row['b_group']}; b − a = {verdict(row_change(row))}.")


def group_label(summary_row, params: list[str]) -> str:
    return ", ".join(f"{p}={summary_row[p]}" for p in params) if params else "all settings"


# ---- sections ------------------------------------------------------------------------------


def introduction(experiments: pd.DataFrame, responses: pd.DataFrame, summary: pd.DataFrame,
                 judges: list[dict]) -> list[str]:
    runs_table = runs(experiments)
    part = responses[responses["experiment"].isin(runs_table["experiment"])]
    base = part[part["experiment"] == part["experiment"].iloc[0]]  # the base model's answers, once
    answers = len(base) + len(part)
    invalid = int((~valid(base, "original")).sum() + (~valid(part, "aligned")).sum())
    probes = int((responses["category"] != TEST_CATEGORY).sum() / max(responses["experiment"].nunique(), 1))
    seeds = summary["seed_count"]
    sentences = [
        f"The study trained {plural(len(runs_table), 'run')} in {plural(len(summary), 'seed group')} "
        f"({'1 seed each' if seeds.max() == 1 else f'{int(seeds.min())} to {int(seeds.max())} seeds per group'}); "
        f"each model answered {count_test_prompts(responses)} test prompts and {probes} probes.",
        f"{invalid} of {answers} answers (the base model's and every run's) are no valid measurement of a stance "
        f"({answer_reasons(base, part) or 'none'}) "
        f"and are left out of every stance rate; a change is called an effect only when its {percent(CONFIDENCE)} "
        "interval over prompts excludes 0.",
    ]
    for judge in judges:
        if "holdout" in judge:
            sentences.append(f"Stances come from the {judge['judge']} judge, which agrees with "
                             f"{fmt(judge['holdout']['accuracy'])} of {judge['holdout']['examples']} labelled "
                             "hold-out texts.")
            break
    return sentences


def answer_reasons(base: pd.DataFrame, aligned: pd.DataFrame) -> str:
    """Why answers are invalid, counting the base model's answers once: 'collapsed 12, off-topic 3'."""
    counts = {reason: int(base.get(f"original_{reason}", pd.Series(dtype=bool)).fillna(False).sum()
                          + aligned.get(f"aligned_{reason}", pd.Series(dtype=bool)).fillna(False).sum())
              for reason in INVALID_REASONS}
    return ", ".join(f"{REASON_WORDS[r]} {n}" for r, n in counts.items() if n)


def summary_table(summary: pd.DataFrame, params: list[str], columns: list[tuple[str, str]]) -> list[list[str]]:
    header = ["experiment", *params, *[label for _, label in columns]]
    rows = [[g["group"], *[format_value(g[p]) for p in params],
             *[str(estimate(g, metric)) if metric in g and f"{metric}_sd" in g else fmt(math.nan)
               for metric, _ in columns]]
            for _, g in summary.iterrows()]
    return [header, *rows]


def sweep_sentence(summary: pd.DataFrame, param: str, metric: str = "support_rate_after") -> list[str]:
    sentences = []
    for label, line in sweep_lines(summary, param):
        values = [estimate(r, metric) for _, r in line.iterrows()]
        points = ", ".join(f"{fmt(v) if not isinstance(v, str) else v} → {e}" for v, e in zip(line[param], values))
        low, high = min(values, key=lambda e: e.mean), max(values, key=lambda e: e.mean)
        if low.n >= 3 and high.n >= 3:
            separated = low.interval[1] < high.interval[0]
            # over seeds, not prompts: a question's sign test over its prompts can still find too few of them
            over = f"the t intervals over seeds ({low.n} and {high.n}) of the lowest and highest point"
            judgement = f"{over} do not overlap: an effect" if separated else f"{over} overlap: no established effect"
        else:
            judgement = "fewer than 3 seeds at an end of the line, so no interval: a pattern to check with seeds"
        sentences.append(f"Along {param} ({label}) the support rate after DPO is {points}; {judgement}.")
    return sentences


def hyperparameter_section(experiments, responses, summary, questions) -> Section:
    section = Section("1. Hyperparameter impact")
    params = [p for p in swept_params(summary) if p not in DATA_SECTION_PARAMS]
    for question in training_questions(questions, experiments, data=False):
        section.add(question_sentence(question, question_table(question, experiments, responses)))
    for param in params:
        section.add(*sweep_sentence(summary, param))
    if not params:
        section.add(f"No training parameter is swept ({plural(0, 'sweep')} of num_epoch, beta, lora_r, lora_alpha "
                    "or learning_rate with the others fixed): the study holds no evidence on them.")
    section.add(*stability_sentences(summary), *fluency_sentences(summary), overfitting_sentence(summary))
    shown = [p for p in params] or [p for p in ("num_epoch", "beta", "lora_r") if summary[p].nunique() > 1]
    section.table = summary_table(summary, shown, [
        ("support_rate_after", "support rate after"), ("valid_rate_after", "valid answers after"),
        ("perplexity_after", "perplexity after"), ("final_loss", "final loss"),
        ("eval_rewards_accuracies", "held-out reward accuracy")])
    return section


def stability_sentences(summary: pd.DataFrame) -> list[str]:
    if "train_loss_sd" not in summary:
        return []
    seeded = summary[summary["train_loss_n"] >= 2]
    sentences = []
    if "loss_spikes" in summary:
        spiky = summary[summary["loss_spikes"] > 0]
        sentences.append(f"Training was stable in {len(summary) - len(spiky)} of {plural(len(summary), 'group')} "
                         "(no step whose loss jumped to over twice the mean of the 5 steps before it)"
                         + (f"; loss spikes in {', '.join(spiky['group'])}." if len(spiky) else "."))
    for _, g in seeded.iterrows():
        sentences.append(f"Over the {int(g['train_loss_n'])} seeds of {g['group']} the mean training loss is "
                         f"{estimate(g, 'train_loss')}.")
    return sentences


def fluency_sentences(summary: pd.DataFrame) -> list[str]:
    if "perplexity_after" not in summary or summary["perplexity_after"].isna().all():
        return []
    before = fmt(summary["perplexity_before"].mean())
    after = ", ".join(f"{g['group']} {estimate(g, 'perplexity_after')}" for _, g in summary.iterrows())
    return [f"Fluency: the median perplexity of the test answers under the base model is {before} before DPO "
            f"and after DPO {after} (higher: less like fluent base-model text)."]


def overfitting_sentence(summary: pd.DataFrame) -> str:
    if "eval_rewards_accuracies" not in summary or summary["eval_rewards_accuracies"].isna().all():
        return (f"Over-fitting is not measured: 0 of {plural(len(summary), 'group')} were evaluated on held-out "
                "preference pairs.")
    parts = ", ".join(f"{g['group']} {estimate(g, 'rewards_accuracies')} → {estimate(g, 'eval_rewards_accuracies')}"
                      for _, g in summary.iterrows() if not math.isnan(g["eval_rewards_accuracies"]))
    return (f"Over-fitting: final reward accuracy on the training pairs → on held-out pairs (rows not trained on): "
            f"{parts}; a large gap means the adapter learnt its pairs rather than the preference.")


def training_questions(questions: list[dict], experiments: pd.DataFrame, data: bool) -> list[dict]:
    """The questions over the test prompts whose two sides differ in data parameters (data=True) or not."""
    table = experiments.set_index("experiment")
    chosen = []
    for question in questions:
        if question.get("categories") is not None:
            continue
        differ = [p for p in table.columns if p in (*DATA_SECTION_PARAMS, "num_epoch", "beta", "lora_r",
                                                    "lora_alpha", "learning_rate")
                  and table.loc[question["a"], p] != table.loc[question["b"], p]]
        if any(p in DATA_SECTION_PARAMS for p in differ) == data:
            chosen.append(question)
    return chosen


def data_section(experiments, responses, summary, questions) -> Section:
    section = Section("3. Data-construction strategies")
    strategies = sorted(summary["strategy"].unique())
    for question in training_questions(questions, experiments, data=True):
        section.add(question_sentence(question, question_table(question, experiments, responses)))
    params = [p for p in swept_params(summary) if p in DATA_SECTION_PARAMS]
    for param in params:
        section.add(*sweep_sentence(summary, param))
    if len(strategies) == 1:
        section.add(f"Every group uses the rejected-example strategy '{strategies[0]}': the study holds no evidence "
                    f"on the other strategies ({plural(1, 'strategy')} run).")
    shown = [p for p in DATA_SECTION_PARAMS if summary[p].nunique() > 1]
    section.table = summary_table(summary, shown, [("support_rate_after", "support rate after"),
                                                   ("valid_rate_after", "valid answers after")])
    return section


def robustness_section(experiments, responses, questions) -> Section:
    section = Section("4. Robustness on probes")
    shifts = stance_shift(responses, experiments)
    categories = [c for c in prompt_categories(responses) if c != TEST_CATEGORY]
    if not categories:
        section.add(f"The study has {plural(0, 'probe')}: nothing to say about robustness.")
        return section
    probes = shifts[shifts["category"] != TEST_CATEGORY]
    unmeasured = probes[~probes["measured"]]
    effects = probes[probes["effect"]]
    section.add(
        f"Of {plural(len(probes), 'cell')} (probe category × group), {len(unmeasured)} hold no valid measurement, "
        f"and DPO moved the support rate in {len(effects)} (an effect: interval excludes 0, sign test p < 0.05)"
        + (": " + "; ".join(f"{r['category']} in {r['group']} {fmt(r['shift'], signed=True)} "
                            f"({percent(CONFIDENCE)} CI {fmt(r['low'], signed=True)} to {fmt(r['high'], signed=True)})"
                            for _, r in effects.iterrows()) if len(effects) else "") + ".")
    if len(unmeasured):
        by_category = unmeasured.drop_duplicates("category")
        section.add("No valid measurement: " + "; ".join(f"{r['category']} ({r['invalid']})"
                                                         for _, r in by_category.iterrows()) + ".")
    for question in questions:
        if question.get("categories") is None:
            continue
        table = question_table(question, experiments, responses)
        measured = table[(table["metric"] == "support_rate") & table["measured"] & (table["category"] != "")]
        differ = [r for _, r in measured.iterrows() if row_change(r).is_effect]
        section.add(f"{question['name']} ({question_title(question)}): b − a is measured in {len(measured)} of "
                    f"{len(question_categories(question, prompt_categories(responses)))} categories and is an effect "
                    f"in {len(differ)}"
                    + (": " + "; ".join(f"{r['category']} {verdict(row_change(r))}" for r in differ) if differ else "")
                    + ".")
    groups = list(dict.fromkeys(shifts["group"]))
    header = ["category", "prompts", *[f"{g}: Δ support rate [95% CI]" for g in groups]]
    rows = []
    for category in prompt_categories(responses):
        cells = shifts[shifts["category"] == category].set_index("group")
        rows.append([category, str(int(cells["prompts"].iloc[0])),
                     *[shift_cell(cells.loc[g]) if g in cells.index else fmt(math.nan) for g in groups]])
    section.table = [header, *rows]
    return section


def shift_cell(row) -> str:
    if not row["measured"]:
        return f"no valid measurement ({row['valid_pairs']} of {row['pairs']} pairs valid)"
    return (f"{fmt(row['shift'], signed=True)} [{fmt(row['low'], signed=True)}, {fmt(row['high'], signed=True)}]"
            + (" effect" if row["effect"] else ""))



# ---- writing -------------------------------------------------------------------------------


def findings(experiments: pd.DataFrame, responses: pd.DataFrame, questions: list[dict],
             judges: list[dict]) -> tuple[list[str], list[Section]]:
    summary = group_summary(experiments)
    return introduction(experiments, responses, summary, judges), [
        hyperparameter_section(experiments, responses, summary, questions),
        Section("2. Qualitative answer changes", *qualitative(experiments, responses)),
        data_section(experiments, responses, summary, questions),
        robustness_section(experiments, responses, questions),
    ]


def markdown_table(rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1:]] + [""]


def markdown(intro: list[str], sections: list[Section]) -> str:
    lines = ["# Findings", "", "Written by the pipeline from the study's tables; every number is computed, none typed in.",
             "", " ".join(intro), ""]
    for section in sections:
        lines += [f"## {section.title}", "", " ".join(section.sentences), ""]
        lines += markdown_table(section.table)
        if section.quotes:
            lines += [section.quotes[0], "", *[f"- {q}" for q in section.quotes[1:]], ""]
    return "\n".join(lines)


def html_document(intro: list[str], sections: list[Section]) -> str:
    parts = [f"<p>{html.escape(' '.join(intro))}</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2><p>{html.escape(' '.join(s.sentences))}</p>")
        if s.table:
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in s.table[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                           for row in s.table[1:])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if s.quotes:
            parts.append(f"<p>{html.escape(s.quotes[0])}</p><ul>"
                         + "".join(f"<li>{html.escape(q)}</li>" for q in s.quotes[1:]) + "</ul>")
    return html_page("Findings", "".join(parts))


def write_findings(experiments: str, responses: str, findings_md: str, findings_html: str,
                   questions: list[dict], judge_accuracy: list[str] | str = ()) -> None:
    """Stage: results/findings.md (and its HTML for the report) from the study's tables."""
    paths = [judge_accuracy] if isinstance(judge_accuracy, str) else list(judge_accuracy)
    judges = [json.loads(Path(p).read_text()) for p in paths]
    intro, sections = findings(read_experiments(experiments), read_responses(responses), list(questions), judges)
    atomic.write_text(findings_md, markdown(intro, sections))
    atomic.write_text(findings_html, html_document(intro, sections))
