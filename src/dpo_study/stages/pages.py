"""HTML pages of the report: question, sweep, summary and responses tables (self-contained, escaped)."""

from __future__ import annotations

import html
import math

import pandas as pd

from dpo_study.analysis.comparisons import outcome_metrics, summary_metrics
from dpo_study.analysis.questions import question_title, row_change, side_estimate
from dpo_study.analysis.labels import NOT_APPLICABLE, fmt, metric_label, ordered_metrics
from dpo_study.analysis.statistics import GROUP_PARAMS, PROCEDURE, Estimate, estimate, varying_params

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2933; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #cbd2d9; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
th { background: #e4e7eb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.changed td { background: #fff3c4; }
tr.invalid td { color: #7b8794; }
td.text { min-width: 10em; max-width: 19em; }
details table { font-size: 0.85em; margin: 0.3em 0; }
p.note { color: #52606d; font-size: 0.9em; }
"""


def html_table(header: list[str], rows: list[list], numeric: set[int] = frozenset(),
               row_classes: list[str] | None = None, wide: set[int] = frozenset(), raw: set[int] = frozenset()) -> str:
    """A plain HTML table; every cell is escaped (answers are model output) except the ``raw`` columns,
    which hold HTML this module built from escaped parts."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(
            f'<td class="{"num" if i in numeric else "text" if i in wide else ""}">'
            f"{c if i in raw else html.escape(str(c))}</td>"
            for i, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def seeds_note(counts) -> str:
    counts = sorted(set(int(c) for c in counts if c))
    if counts == [1]:
        return note("Every value comes from a single seed: the table cannot tell an effect from seed-to-seed noise.")
    return note("Values are the mean ± the sample standard deviation over n seeds, with a 95% t interval from 3 "
                "seeds on; a single number is one seed.")


def difference_cell(row) -> str:
    if not row["measured"]:
        return "no valid measurement"
    change = row_change(row)
    if math.isnan(change.difference):
        return NOT_APPLICABLE
    text = fmt(change.difference, signed=True)
    if not math.isnan(change.low):
        text += f" [{fmt(change.low, signed=True)}, {fmt(change.high, signed=True)}]"
    return text


def verdict_cell(row) -> str:
    if not row["measured"] or pd.isna(row["established"]):
        return ""
    return "established" if bool(row["established"]) else "not established"


def question_page(question: dict, table: pd.DataFrame) -> str:
    a, b = table["a_group"].iloc[0], table["b_group"].iloc[0]
    header = ["category", "prompts (valid pairs)", "metric", "base model (before DPO)", f"a: {a}", f"b: {b}",
              "difference b − a [95% CI]", "verdict"]
    rows = []
    for _, r in table.iterrows():
        prompts = ("" if pd.isna(r["prompts"]) else
                   f"{int(r['prompts'])}" + (f" ({int(r['valid_pairs'])})" if r["metric"].endswith("_rate")
                                             or r["metric"] == "stance_changed" else ""))
        a_side, b_side = (side_estimate(r, s) for s in ("a", "b"))
        rows.append([r["category"] or "whole run", prompts, metric_label(r["metric"]), fmt(r["base"]),
                     str(a_side) if r["measured"] else NOT_APPLICABLE,
                     str(b_side) if r["measured"] else NOT_APPLICABLE, difference_cell(r), verdict_cell(r)])
    body = html_table(header, rows, numeric={1, 3, 4, 5, 6})
    body += note("Stance rates count valid answers only (not collapsed, on topic, in the prompt's language, not cut "
                 "at max_new_tokens); a category with fewer than half its answer pairs valid is no valid measurement. "
                 f"The verdict: {PROCEDURE}. The intervals of the whole run's metrics come from the same bootstrap "
                 "over seeds alone (no verdict: one value a run).")
    body += seeds_note(list(table["a_n"]) + list(table["b_n"]))
    return html_page(f"{question['name']}: {question_title(question)}", body)


def sweep_page(param: str, table: pd.DataFrame) -> str:
    parts = []
    for metric, rows in table.groupby("metric", sort=False):
        cells = rows.assign(cell=[str(Estimate(m, s, n)) for m, s, n in zip(rows["mean"], rows["sd"], rows["n"])])
        pivot = cells.pivot_table(index="value", columns="setting", values="cell", aggfunc="first", sort=True)
        pivot = pivot[list(dict.fromkeys(rows["setting"]))]  # the lines' order (numeric), not alphabetical
        header = [param, *pivot.columns]
        body_rows = [[fmt(v) if isinstance(v, float) else v, *[NOT_APPLICABLE if pd.isna(c) else c for c in row]]
                     for v, row in zip(pivot.index, pivot.itertuples(index=False))]
        parts.append(f"<h2>{html.escape(metric_label(metric))}</h2>"
                     + html_table(header, body_rows, numeric=set(range(1, len(header)))))
    parts.append(note(f"Rows: values of {param}; columns: the settings of the other varied parameters."))
    parts.append(seeds_note(table["n"]))
    return html_page(f"Sweep of {param}", "\n".join(parts))


def summary_page(summary: pd.DataFrame) -> str:
    shown_params = varying_params(summary) or GROUP_PARAMS
    metrics = ordered_metrics([*outcome_metrics(summary),
                               *[m for m in summary_metrics(summary) if not m.endswith("_before")]])
    header = ["experiment", "seeds", *shown_params, *[metric_label(m) for m in metrics]]
    rows = [[g["group"], g["seeds"], *[g[p] for p in shown_params], *[str(estimate(g, m)) for m in metrics]]
            for _, g in summary.iterrows()]
    before = [f"{metric_label(m)} {fmt(summary[m].mean())}" for m in summary_metrics(summary) if m.endswith("_before")]
    body = html_table(header, rows, numeric=set(range(2 + len(shown_params), len(header))))
    body += note("The base model before DPO: " + "; ".join(before) + ".") if before else ""
    body += seeds_note(summary[f"{metrics[0]}_n"]) if metrics else ""
    return html_page("Experiments", body)


def stance_cell(row, side: str) -> str:
    text = f"{row[f'{side}_stance']} ({fmt(row[f'{side}_support_score'])})"
    if f"{side}_valid" in row and not row[f"{side}_valid"]:
        reasons = [r.replace("_", " ") for r in ("collapsed", "off_topic", "wrong_language", "truncated")
                   if f"{side}_{r}" in row and pd.notna(row[f"{side}_{r}"]) and bool(row[f"{side}_{r}"])]
        text += f"; not counted: {', '.join(reasons) or 'invalid'}"
    return text


def measures_cell(row, measures: list[str]) -> str:
    """The other per-answer measures, one click away (a closed <details>)."""
    cells = "".join(f"<tr><td>{html.escape(m.replace('_', ' '))}</td><td>{html.escape(str(row['original_' + m]))}"
                    f"</td><td>{html.escape(str(row['aligned_' + m]))}</td></tr>" for m in measures)
    return (f"<details><summary>{len(measures)} measures</summary><table><thead><tr><th>measure</th>"
            f"<th>before</th><th>after</th></tr></thead><tbody>{cells}</tbody></table></details>")


def responses_page(experiment: str, responses: pd.DataFrame) -> str:
    measures = [c.removeprefix("aligned_") for c in responses.columns if c.startswith("aligned_")
                and "original_" + c.removeprefix("aligned_") in responses.columns
                and c.removeprefix("aligned_") not in ("response", "stance", "support_score")]
    header = ["prompt id", "prompt", "before DPO", "after DPO", "stance before", "stance after", "other measures"]
    rows, classes = [], []
    for _, r in responses.iterrows():
        rows.append([f"{r['category']} {r['id']}", r["prompt"], r["original_response"], r["aligned_response"], stance_cell(r, "original"),
                     stance_cell(r, "aligned"), measures_cell(r, measures)])
        invalid = any(f"{s}_valid" in r and not r[f"{s}_valid"] for s in ("original", "aligned"))
        classes.append("invalid" if invalid else "changed" if r["original_stance"] != r["aligned_stance"] else "")
    changed, invalid = classes.count("changed"), classes.count("invalid")
    body = note(f"{changed} of {len(rows)} answers changed stance (highlighted); {invalid} answer pairs hold an answer "
                "that is no valid measurement (grey: collapsed, off-topic, in the wrong language or cut at "
                "max_new_tokens), not counted in the stance rates. The stance is the judge's label with its support "
                "probability in brackets; 'other measures' opens every other per-answer measure.")
    body += html_table(header, rows, row_classes=classes, wide={1, 2, 3}, raw={6})
    return html_page(f"Answers before and after DPO: {experiment}", body)
