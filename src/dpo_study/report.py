"""Comparison tables of a finished study: seed groups, homework questions, sweeps, responses.

Everything here reads the two study tables (``experiments.csv``, ``responses.csv``) and works with
whatever metric columns they hold: a numeric column of experiments.csv that is not an experiment
parameter is a metric, and an ``original_X``/``aligned_X`` pair of responses.csv is a per-response
metric. Columns added later show up without a change here.

Experiments that differ only in ``seed`` form a *seed group*: tables show the mean ± the sample
standard deviation over its seeds, so an effect can be told from seed noise.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dpo_study.experiments import EXPERIMENT_PARAMS, format_value
from dpo_study.validation import ConfigError

GROUP_PARAMS = [p for p in EXPERIMENT_PARAMS if p != "seed"]
TEST_CATEGORY = "test"  # the category data.prompt_records gives the test prompts
ALL_CATEGORIES = "all"

# Readable names with units of the metrics the foundation writes; others show their column name.
METRIC_LABELS = {
    "support_rate": "support rate (share of answers judged support)",
    "neutral_rate": "neutral rate (share of answers judged neutral)",
    "mean_chars": "mean answer length (characters)",
    "chars": "mean answer length (characters)",
    "support_score": "mean support probability (0 to 1)",
    "stance_changed": "share of answers whose stance changed",
    "train_loss": "mean DPO training loss (nats)",
    "final_loss": "final DPO loss (nats)",
    "rewards_margins": "final reward margin (nats)",
    "rewards_accuracies": "final reward accuracy (share of pairs)",
    "train_seconds": "training time (s)",
}
# Shown first, in this order; other metrics follow in their table order.
METRIC_ORDER = ["support_rate", "neutral_rate", "mean_chars", "chars", "support_score", "stance_changed",
                "train_loss", "rewards_margins", "rewards_accuracies"]


def base_metric(metric: str) -> str:
    """The measured quantity of a column: ``support_rate_after`` -> ``support_rate``."""
    return metric.removesuffix("_after").removesuffix("_before")


def metric_label(metric: str) -> str:
    name = base_metric(metric)
    return METRIC_LABELS.get(name, name.replace("_", " "))


def ordered_metrics(metrics) -> list[str]:
    """Known metrics first, in METRIC_ORDER; the others after them, in their given order."""
    metrics = list(dict.fromkeys(metrics))
    rank = {name: index for index, name in enumerate(METRIC_ORDER)}
    return sorted(metrics, key=lambda m: rank.get(base_metric(m), len(rank)))


# ---- numbers --------------------------------------------------------------------------


def fmt(value, signed: bool = False) -> str:
    """Three significant figures (whole numbers from 1000 on), a real minus sign, '–' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    sign = "+" if signed else ""
    text = f"{value:{sign}.0f}" if abs(value) >= 1000 else f"{value:{sign}.3g}"
    return text.replace("-", "−")


@dataclass(frozen=True)
class Estimate:
    """A metric over the seeds of a group: mean, sample standard deviation (NaN for one seed), n."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values) -> Estimate:
        values = pd.Series(values, dtype=float).dropna()
        if values.empty:
            return cls(math.nan, math.nan, 0)
        # Rounded so that equal values give a spread of exactly 0, not float noise.
        sd = round(float(values.std(ddof=1)), 12) if len(values) > 1 else math.nan
        return cls(round(float(values.mean()), 12), sd, len(values))

    @property
    def se(self) -> float:
        """Standard error of the mean (NaN for one seed: the spread is unknown)."""
        return self.sd / math.sqrt(self.n) if self.n > 1 else math.nan

    def __str__(self) -> str:
        if self.n == 0:
            return "–"
        if self.n == 1:
            return fmt(self.mean)
        return f"{fmt(self.mean)} ± {fmt(self.sd)} (n={self.n})"


def difference_se(a: Estimate, b: Estimate) -> float:
    """Standard error of b − a (NaN unless both sides have several seeds)."""
    return math.hypot(a.se, b.se)


# ---- reading and grouping ---------------------------------------------------------------


def read_experiments(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def read_responses(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str, "category": str}, keep_default_na=False, na_values=[""])


def metric_columns(experiments: pd.DataFrame) -> list[str]:
    """Numeric (or boolean) columns that are not parameters: the metrics, including any added later."""
    return [c for c in experiments.columns if c not in EXPERIMENT_PARAMS and c != "experiment"
            and pd.api.types.is_numeric_dtype(experiments[c])]


def with_groups(experiments: pd.DataFrame) -> pd.DataFrame:
    """The experiments with a ``group`` column: the name of their seed group.

    A group of one run keeps its experiment's name; a group of several seeds takes its members'
    common name without the ``seed~N`` part (a grid over seeds ``g`` gives ``g``), or its first
    member's name when they have no common name.
    """
    table = experiments.copy()
    names: dict[str, str] = {}
    for _, members in table.groupby(GROUP_PARAMS, sort=False, dropna=False):
        first = members["experiment"].iloc[0]
        run_names = members.drop_duplicates(subset=list(EXPERIMENT_PARAMS))["experiment"]
        stripped = {re.sub(r"_?seed~\d+", "", n) for n in run_names}
        label = stripped.pop() if members["seed"].nunique() > 1 and len(stripped) == 1 else first
        # A common name must not be another experiment's or group's name.
        others = set(table["experiment"]) - set(members["experiment"])
        if not label or label in others or label in names.values():
            label = first
        names.update(dict.fromkeys(members["experiment"], label))
    table["group"] = table["experiment"].map(names)
    return table


def runs(experiments: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct run (experiments with identical parameters share one) with its group."""
    return with_groups(experiments).drop_duplicates(subset=list(EXPERIMENT_PARAMS))


def group_of(experiments: pd.DataFrame) -> dict[str, str]:
    """experiment name -> seed group name."""
    table = with_groups(experiments)
    return dict(zip(table["experiment"], table["group"]))


def group_estimates(table: pd.DataFrame, value_columns: list[str], by: list[str]) -> pd.DataFrame:
    """Per group of ``by``: mean, sd and n of each value column (columns ``X``, ``X_sd``, ``X_n``)."""
    rows = []
    for keys, part in table.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, keys))
        for column in value_columns:
            e = Estimate.of(part[column])
            row.update({column: e.mean, f"{column}_sd": e.sd, f"{column}_n": e.n})
        rows.append(row)
    return pd.DataFrame(rows)


def estimate(row, column: str) -> Estimate:
    return Estimate(float(row[column]), float(row[f"{column}_sd"]), int(row[f"{column}_n"]))


def group_summary(experiments: pd.DataFrame) -> pd.DataFrame:
    """One row per seed group: its parameters, seeds and members, and every metric as mean/sd/n."""
    table = runs(experiments)
    info = table.groupby("group", sort=False).agg(
        seeds=("seed", lambda s: ", ".join(map(str, s))),
        seed_count=("seed", "nunique"),
        members=("experiment", ", ".join),
        **{p: (p, "first") for p in GROUP_PARAMS},
    )
    summary = group_estimates(table, metric_columns(table), ["group"])
    return info.reset_index().merge(summary, on="group")


def varying_params(summary: pd.DataFrame) -> list[str]:
    return [p for p in GROUP_PARAMS if summary[p].nunique() > 1]


def category_metrics(responses: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, category): the prompt count and before/after of each per-response metric.

    Long form: experiment, category, prompts, metric, before, after. Stances become rates (support,
    and neutral where a judge gives that label) and the share of answers whose stance changed;
    numeric or boolean ``original_X``/``aligned_X`` column pairs become means.
    """
    paired = [c.removeprefix("aligned_") for c in responses.columns
              if c.startswith("aligned_") and "original_" + c.removeprefix("aligned_") in responses.columns]
    numeric = [m for m in paired
               if all(pd.api.types.is_numeric_dtype(responses[f"{side}_{m}"]) for side in ("original", "aligned"))]
    has_stance = "stance" in paired
    labels = set(responses["original_stance"]) | set(responses["aligned_stance"]) if has_stance else set()
    rows = []
    for (experiment, category), part in responses.groupby(["experiment", "category"], sort=False):
        base = {"experiment": experiment, "category": category, "prompts": len(part)}
        if has_stance:
            for label in ("support", "neutral"):
                if label in labels:
                    rows.append({**base, "metric": f"{label}_rate",
                                 "before": float((part["original_stance"] == label).mean()),
                                 "after": float((part["aligned_stance"] == label).mean())})
            rows.append({**base, "metric": "stance_changed", "before": math.nan,
                         "after": float((part["original_stance"] != part["aligned_stance"]).mean())})
        for metric in numeric:
            rows.append({**base, "metric": metric,
                         "before": float(part[f"original_{metric}"].astype(float).mean()),
                         "after": float(part[f"aligned_{metric}"].astype(float).mean())})
    return pd.DataFrame(rows, columns=["experiment", "category", "prompts", "metric", "before", "after"])


def count_test_prompts(responses: pd.DataFrame) -> int:
    """How many test prompts each model answered."""
    return int((responses["category"] == TEST_CATEGORY).sum() / max(responses["experiment"].nunique(), 1))


def prompt_categories(responses: pd.DataFrame) -> list[str]:
    """The prompt categories in file order, the test set first."""
    categories = list(dict.fromkeys(responses["category"]))
    return sorted(categories, key=lambda c: c != TEST_CATEGORY)


def stance_shift(responses: pd.DataFrame, experiments: pd.DataFrame) -> pd.DataFrame:
    """Per (seed group, category): the change of the support rate through DPO, over seeds.

    Columns: group, category, prompts, shift, shift_sd, shift_n.
    """
    rates = category_metrics(responses)
    rates = rates[rates["metric"] == "support_rate"].copy()
    rates["shift"] = rates["after"] - rates["before"]
    table = runs(experiments)
    rates = rates[rates["experiment"].isin(table["experiment"])]
    rates["group"] = rates["experiment"].map(group_of(experiments))
    shifts = group_estimates(rates, ["shift"], ["group", "category"])
    prompts = rates.groupby("category")["prompts"].first()
    shifts.insert(2, "prompts", shifts["category"].map(prompts))
    return shifts


# ---- questions ------------------------------------------------------------------------


def question_categories(question: dict, available: list[str]) -> list[str] | None:
    """The categories a question compares (None: the experiment-level metrics of the test set)."""
    chosen = question.get("categories")
    if chosen is None:
        return None
    return list(available) if chosen == ALL_CATEGORIES else list(chosen)


def question_title(question: dict) -> str:
    return question.get("title") or f"{question['a']} vs {question['b']}"


def check_questions(questions: list[dict], experiment_names, probe_categories: list[str]) -> None:
    """Parse-time check: every question has a unique name and names known experiments and categories."""
    names = set(experiment_names)
    categories = [TEST_CATEGORY, *probe_categories]
    seen = set()
    for index, question in enumerate(questions):
        where = f"questions[{index}] ({question['name']})"
        if question["name"] in seen:
            raise ConfigError(f"{where}.name: duplicate question name {question['name']!r}")
        seen.add(question["name"])
        for side in ("a", "b"):
            if question[side] not in names:
                raise ConfigError(f"{where}.{side}: {question[side]!r} is not an experiment name "
                                  f"(known: {', '.join(sorted(names))})")
        if question["a"] == question["b"]:
            raise ConfigError(f"{where}.b: {question['b']!r} is also a; a question compares two different experiments")
        unknown = [c for c in question_categories(question, categories) or [] if c not in categories]
        if unknown:
            raise ConfigError(f"{where}.categories: {unknown} are not prompt categories "
                              f"(known: {', '.join(categories)})")


def question_table(question: dict, experiments: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """The two sides of a question metric by metric, beside the base model, with the difference b − a.

    Each side is the seed group of the named experiment. Without ``categories`` the metrics are
    those of experiments.csv (the test prompts and training); with them, the per-response metrics
    of each category's prompts. Columns: question, category, prompts, metric, base, a_group, a_mean,
    a_sd, a_n, b_group, b_mean, b_sd, b_n, difference, difference_se.
    """
    table = runs(experiments)
    groups = {side: group_of(experiments)[question[side]] for side in ("a", "b")}
    categories = question_categories(question, prompt_categories(responses))
    rows = []
    if categories is None:
        metrics = metric_columns(table)
        for metric in ordered_metrics(m.removesuffix("_after") for m in metrics if not m.endswith("_before")):
            after = metric if metric in metrics else f"{metric}_after"
            before = f"{metric}_before" if f"{metric}_before" in metrics else None
            prompts = count_test_prompts(responses)
            row = {"category": TEST_CATEGORY if before else "", "prompts": prompts if before else None,
                   "metric": metric, "base": float(table[before].mean()) if before else math.nan}
            rows.append({**row, **{side: Estimate.of(table.loc[table["group"] == g, after])
                                   for side, g in groups.items()}})
    else:
        per_run = category_metrics(responses[responses["experiment"].isin(table["experiment"])])
        per_run["group"] = per_run["experiment"].map(group_of(experiments))
        for category in categories:
            part = per_run[per_run["category"] == category]
            for metric in ordered_metrics(part["metric"]):
                cells = part[part["metric"] == metric]
                row = {"category": category, "prompts": int(cells["prompts"].iloc[0]), "metric": metric,
                       "base": float(cells["before"].mean())}
                rows.append({**row, **{side: Estimate.of(cells.loc[cells["group"] == g, "after"])
                                       for side, g in groups.items()}})
    out = pd.DataFrame(rows)
    out.insert(0, "question", question["name"])
    for side in ("a", "b"):
        estimates = out.pop(side)
        out[f"{side}_group"] = groups[side]
        out[f"{side}_mean"] = [e.mean for e in estimates]
        out[f"{side}_sd"] = [e.sd for e in estimates]
        out[f"{side}_n"] = [e.n for e in estimates]
    out["difference"] = out["b_mean"] - out["a_mean"]
    out["difference_se"] = [difference_se(side_estimate(r, "a"), side_estimate(r, "b")) for _, r in out.iterrows()]
    return out


def side_estimate(row, side: str) -> Estimate:
    return Estimate(float(row[f"{side}_mean"]), float(row[f"{side}_sd"]), int(row[f"{side}_n"]))


# ---- sweeps -------------------------------------------------------------------------


def sweep_lines(summary: pd.DataFrame, param: str) -> list[tuple[str, pd.DataFrame]]:
    """The sweeps of ``param``: per setting of the other varied parameters, the groups along ``param``.

    Only settings where ``param`` takes at least two values count as a sweep; each line's rows are
    sorted by ``param``. The label names the other varied parameters' values.
    """
    others = [p for p in varying_params(summary) if p != param]
    found = [(dict(zip(others, keys)), part.sort_values(param))
             for keys, part in (summary.groupby(others, sort=True) if others else [((), summary)])
             if part[param].nunique() >= 2]
    # Name a line by what tells it from the other lines (by all its settings when it is alone).
    differing = [p for p in others if len({setting[p] for setting, _ in found}) > 1] or others
    return [(", ".join(f"{p}={format_value(setting[p])}" for p in differing) or "other settings fixed", part)
            for setting, part in found]


def swept_params(summary: pd.DataFrame) -> list[str]:
    return [p for p in varying_params(summary) if sweep_lines(summary, p)]


def summary_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics of a group summary (the columns that have an ``_sd`` beside them)."""
    return [c for c in summary.columns if f"{c}_sd" in summary.columns]


def outcome_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics measured after DPO (``X_after``): what sweeps and summaries show first."""
    return ordered_metrics(m for m in summary_metrics(summary) if m.endswith("_after"))


def sweep_table(summary: pd.DataFrame, param: str) -> pd.DataFrame:
    """Long form of every sweep line of ``param``: param, value, setting, metric, mean, sd, n."""
    rows = []
    for label, line in sweep_lines(summary, param):
        for _, group in line.iterrows():
            for metric in outcome_metrics(summary):
                e = estimate(group, metric)
                rows.append({"param": param, "value": group[param], "setting": label, "group": group["group"],
                             "metric": metric, "mean": e.mean, "sd": e.sd, "n": e.n})
    return pd.DataFrame(rows)


# ---- HTML ---------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2933; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #cbd2d9; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
th { background: #e4e7eb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.changed td { background: #fff3c4; }
td.text { min-width: 14em; max-width: 32em; }
p.note { color: #52606d; font-size: 0.9em; }
"""


def html_table(header: list[str], rows: list[list], numeric: set[int] = frozenset(),
               row_classes: list[str] | None = None, wide: set[int] = frozenset()) -> str:
    """A plain HTML table; every cell is escaped (answers are model output)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(
            f'<td class="{"num" if i in numeric else "text" if i in wide else ""}">{html.escape(str(c))}</td>'
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
    return note("Values are the mean ± the sample standard deviation over n seeds; a single number is one seed.")


def question_page(question: dict, table: pd.DataFrame) -> str:
    a, b = table["a_group"].iloc[0], table["b_group"].iloc[0]
    header = ["category", "prompts", "metric", "base model (before DPO)", f"a: {a}", f"b: {b}", "difference b − a"]
    rows = []
    for _, r in table.iterrows():
        a_side, b_side = side_estimate(r, "a"), side_estimate(r, "b")
        diff = fmt(r["difference"], signed=True)
        if not math.isnan(r["difference_se"]):
            diff += f" ± {fmt(r['difference_se'])} (s.e.)"
        rows.append([r["category"], "" if pd.isna(r["prompts"]) else int(r["prompts"]), metric_label(r["metric"]),
                     fmt(r["base"]), str(a_side), str(b_side), diff])
    body = html_table(header, rows, numeric={1, 3, 4, 5, 6})
    resolution = [f"{c}: {int(n)} prompts, so a rate moves in steps of {fmt(1 / n)}"
                  for c, n in table.drop_duplicates("category")[["category", "prompts"]].itertuples(index=False)
                  if c and not pd.isna(n) and n > 0]
    body += note("Rates are shares of the prompts of a category. " + "; ".join(resolution) + ".") if resolution else ""
    body += seeds_note(list(table["a_n"]) + list(table["b_n"]))
    return html_page(f"{question['name']}: {question_title(question)}", body)


def sweep_page(param: str, table: pd.DataFrame) -> str:
    parts = []
    for metric, rows in table.groupby("metric", sort=False):
        cells = rows.assign(cell=[str(Estimate(m, s, n)) for m, s, n in zip(rows["mean"], rows["sd"], rows["n"])])
        pivot = cells.pivot_table(index="value", columns="setting", values="cell", aggfunc="first", sort=True)
        pivot = pivot[list(dict.fromkeys(rows["setting"]))]  # the lines' order (numeric), not alphabetical
        header = [param, *pivot.columns]
        body_rows = [[fmt(v) if isinstance(v, float) else v, *["–" if pd.isna(c) else c for c in row]]
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


def responses_page(experiment: str, responses: pd.DataFrame) -> str:
    extra = [c.removeprefix("aligned_") for c in responses.columns if c.startswith("aligned_")
             and "original_" + c.removeprefix("aligned_") in responses.columns
             and c.removeprefix("aligned_") not in ("response", "stance", "support_score", "chars")]
    header = ["category", "id", "prompt", "before DPO", "stance before", "after DPO", "stance after",
              "characters before → after", *[f"{m} before → after" for m in extra]]
    rows, classes = [], []
    for _, r in responses.iterrows():
        rows.append([r["category"], r["id"], r["prompt"], r["original_response"],
                     f"{r['original_stance']} ({fmt(r['original_support_score'])})", r["aligned_response"],
                     f"{r['aligned_stance']} ({fmt(r['aligned_support_score'])})",
                     f"{fmt(r['original_chars'])} → {fmt(r['aligned_chars'])}",
                     *[f"{r['original_' + m]} → {r['aligned_' + m]}" for m in extra]])
        classes.append("changed" if r["original_stance"] != r["aligned_stance"] else "")
    changed = classes.count("changed")
    body = note(f"{changed} of {len(rows)} answers changed stance (highlighted). "
                "The stance is the judge's label with its support probability in brackets.")
    body += html_table(header, rows, numeric={7}, row_classes=classes, wide={2, 3, 5})
    return html_page(f"Answers before and after DPO: {experiment}", body)


# ---- stages -------------------------------------------------------------------------


def write_summary_table(experiments: str, summary_csv: str, summary_html: str) -> None:
    """Stage: experiments × metrics, one row per seed group (mean ± sd over seeds)."""
    summary = group_summary(read_experiments(experiments))
    Path(summary_csv).parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(summary_csv, index=False)
    Path(summary_html).write_text(summary_page(summary), encoding="utf-8")


def write_question_tables(experiments: str, responses: str, questions_dir: str, questions: list[dict]) -> None:
    """Stage: per homework question, ``<name>.csv`` and ``<name>.html`` side by side with the difference."""
    experiment_table, response_table = read_experiments(experiments), read_responses(responses)
    folder = Path(questions_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for question in questions:
        table = question_table(question, experiment_table, response_table)
        table.to_csv(folder / f"{question['name']}.csv", index=False)
        (folder / f"{question['name']}.html").write_text(question_page(question, table), encoding="utf-8")


def write_sweep_tables(experiments: str, sweeps_dir: str) -> None:
    """Stage: per swept parameter, ``<param>.csv`` (long form) and ``<param>.html`` (pivots)."""
    summary = group_summary(read_experiments(experiments))
    folder = Path(sweeps_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for param in swept_params(summary):
        table = sweep_table(summary, param)
        table.to_csv(folder / f"{param}.csv", index=False)
        (folder / f"{param}.html").write_text(sweep_page(param, table), encoding="utf-8")


def write_response_tables(responses: str, responses_dir: str) -> None:
    """Stage: per experiment, ``<experiment>.html``: every prompt's answer before and after DPO."""
    table = read_responses(responses)
    folder = Path(responses_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for experiment, part in table.groupby("experiment", sort=False):
        (folder / f"{experiment}.html").write_text(responses_page(experiment, part), encoding="utf-8")
