"""The study's statistics, in one place: seed groups, paired before/after changes, intervals.

- A *seed group* is the experiments that differ only in ``seed``; a metric over it is an
  ``Estimate``: mean, sample standard deviation and n, plus a t interval from 3 seeds on.
- A *change* (``Change``) is measured over prompts with the seeds nested: before vs after DPO on
  the same prompts, or seed group b vs seed group a on the same prompts. One procedure gives every
  change its interval and its verdict (``PROCEDURE``, below): a two-way bootstrap over prompts and
  seeds; a change is established when the interval excludes 0 over at least MIN_PROMPTS prompts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from dpo_study.config.experiments import EXPERIMENT_PARAMS
from dpo_study.analysis.labels import fmt

GROUP_PARAMS = [p for p in EXPERIMENT_PARAMS if p != "seed"]
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
MIN_SEEDS_FOR_INTERVAL = 3


def rate(values) -> float:
    """The mean of a boolean (or 0/1) series over its non-missing values; NaN when none is left.
    (numpy's mean of the values left, as pandas' masked mean computes it, without a Series per call:
    the report calls this tens of thousands of times.)"""
    if isinstance(values, (pd.Series, pd.Index)):
        array = values.to_numpy(dtype=float, na_value=np.nan)
    elif isinstance(values, np.ndarray):
        array = values.astype(float)
    else:
        array = np.array([np.nan if v is None or v is pd.NA else v for v in values], dtype=float)
    array = array[~np.isnan(array)]
    return float(np.mean(array)) if len(array) else math.nan


def percent(value: float) -> str:
    return f"{round(100 * value)}%"


# ---- seeds ------------------------------------------------------------------------------


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
    def interval(self) -> tuple[float, float]:
        """The t interval of the mean over seeds (NaN below MIN_SEEDS_FOR_INTERVAL seeds)."""
        if self.n < MIN_SEEDS_FOR_INTERVAL or math.isnan(self.sd):
            return math.nan, math.nan
        if self.sd == 0:
            return self.mean, self.mean
        low, high = stats.t.interval(CONFIDENCE, self.n - 1, loc=self.mean, scale=self.sd / math.sqrt(self.n))
        return float(low), float(high)

    def __str__(self) -> str:
        if self.n == 0:
            return fmt(math.nan)
        if self.n == 1:
            return fmt(self.mean)
        text = f"{fmt(self.mean)} ± {fmt(self.sd)} (n={self.n}"
        low, high = self.interval
        if not math.isnan(low):
            text += f"; {percent(CONFIDENCE)} CI {fmt(low)} to {fmt(high)}"
        return text + ")"


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


def metric_columns(experiments: pd.DataFrame) -> list[str]:
    """Numeric (or boolean) columns that are not parameters: the metrics, including any added later."""
    return [c for c in experiments.columns if c not in EXPERIMENT_PARAMS and c not in ("experiment", "group")
            and pd.api.types.is_numeric_dtype(experiments[c])]


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


# ---- the one test of every comparison ----------------------------------------------------
#
# A comparison is side b against side a on the same prompts: two groups after DPO (a question, the
# two ends of a sweep) or one group before and after DPO (side a then holds the base model's answers,
# a single "seed"). Each side is a prompt × run table of per-answer values (NaN where the answer is
# no valid measurement). The difference is the mean over prompts of the per-prompt difference of the
# run means. Its interval comes from a two-way bootstrap: each resample draws the prompts, and each
# side's runs (seeds), with replacement, so that both the prompt-to-prompt and the seed-to-seed
# spread widen it. A comparison is *established* when the 95% percentile interval excludes 0 and at
# least MIN_PROMPTS prompts have a valid answer on both sides (below that, even prompts that all
# moved the same way could be chance: 2 · 0.5^5 > 0.05). That is the only verdict the findings give.

MIN_PROMPTS = 6
PROCEDURE = (f"each comparison has one verdict, from one procedure fixed before the study: a two-way bootstrap "
             f"({BOOTSTRAP_RESAMPLES:,} resamples, seeded) that draws the prompts and each side's seeds with "
             "replacement; the change is the mean over prompts of the per-prompt difference of the seed means, "
             "and it is established when its 95% percentile interval excludes 0 over at least "
             f"{MIN_PROMPTS} prompts with a valid answer on both sides")


def bootstrap_interval(values) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (missing values dropped): the two-way
    bootstrap with one run a side."""
    values = pd.Series(values, dtype=float).reset_index(drop=True)
    change = Change.of(pd.Series(0.0, index=values.index).to_frame(), values.to_frame())
    return change.low, change.high


def _run_means(table: np.ndarray, prompts: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Per resample and prompt: the mean over the drawn runs (NaN where none of them is valid)."""
    # The seeds are drawn per resample, not per prompt: a resample's sum over its drawn runs is its
    # draw counts times the table (NaN as 0), for every prompt at once; then its prompts are taken.
    missing = np.isnan(table)
    draws = (seeds[:, :, None] == np.arange(table.shape[1])).sum(axis=1).astype(float)
    sums = np.take_along_axis(draws @ np.where(missing, 0.0, table).T, prompts, axis=1)
    counts = np.take_along_axis(draws @ (~missing).T.astype(float), prompts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _resampled_means(a: np.ndarray, b: np.ndarray, prompts, seeds_a, seeds_b) -> np.ndarray:
    per_prompt = _run_means(b, prompts, seeds_b) - _run_means(a, prompts, seeds_a)
    counts = (~np.isnan(per_prompt)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(per_prompt, axis=1) / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True)
class Change:
    """b − a over the prompts both sides answered validly: the difference, its two-way bootstrap
    interval, the counts, and the bootstrap variance from prompts alone and from seeds alone (what a
    larger study would need more of)."""

    difference: float
    low: float
    high: float
    prompts: int  # prompts with a valid answer on both sides
    excluded: int  # prompts left out: no valid answer on a side
    seeds_a: int = 1
    seeds_b: int = 1
    prompt_variance: float = math.nan
    seed_variance: float = math.nan

    @classmethod
    def of(cls, a: pd.DataFrame, b: pd.DataFrame, spread: bool = False) -> Change:
        """``a``, ``b``: prompt × run tables (index: prompt id); rows are matched by prompt id.
        ``spread``: also split the bootstrap variance into its prompt and seed parts (for ``needed``)."""
        a, b = a.astype(float), b.astype(float)
        a, b = a.align(b, join="outer", axis=0)
        both = a.notna().any(axis=1) & b.notna().any(axis=1)
        first, second = a[both].to_numpy(), b[both].to_numpy()
        n = len(first)
        if n == 0:
            return cls(math.nan, math.nan, math.nan, 0, len(a), a.shape[1], b.shape[1])
        per_prompt = np.nanmean(second, axis=1) - np.nanmean(first, axis=1)
        difference = round(float(per_prompt.mean()), 12)
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        shape = (BOOTSTRAP_RESAMPLES,)
        prompts = rng.integers(0, n, shape + (n,))
        seeds_a = rng.integers(0, first.shape[1], shape + (first.shape[1],))
        seeds_b = rng.integers(0, second.shape[1], shape + (second.shape[1],))
        every = lambda k: np.broadcast_to(np.arange(k), shape + (k,))  # noqa: E731 (no resampling)
        both_ways = _resampled_means(first, second, prompts, seeds_a, seeds_b)
        tail = 100 * (1 - CONFIDENCE) / 2
        low, high = np.nanpercentile(both_ways, [tail, 100 - tail])
        if np.nanmax(both_ways) - np.nanmin(both_ways) < 1e-12:
            low = high = difference  # every resample has this mean (no float noise)
        parts = (math.nan, math.nan)
        if spread:
            prompt_only = _resampled_means(first, second, prompts, every(first.shape[1]), every(second.shape[1]))
            seed_only = _resampled_means(first, second, every(n), seeds_a, seeds_b)
            parts = (float(np.nanvar(prompt_only)), float(np.nanvar(seed_only)))
        return cls(difference, round(float(low), 12), round(float(high), 12), n, len(a) - n, first.shape[1],
                   second.shape[1], *parts)

    @classmethod
    def paired(cls, first, second) -> Change:
        """second − first, prompt by prompt, one run a side (values in prompt order)."""
        return cls.of(pd.Series(first, dtype=float).reset_index(drop=True).to_frame(),
                      pd.Series(second, dtype=float).reset_index(drop=True).to_frame())

    @property
    def interval_excludes_zero(self) -> bool:
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)

    @property
    def is_effect(self) -> bool:
        """Established: the interval excludes 0 over at least MIN_PROMPTS prompts."""
        return self.interval_excludes_zero and self.prompts >= MIN_PROMPTS

    def interval_text(self) -> str:
        return f"{percent(CONFIDENCE)} CI {fmt(self.low, signed=True)} to {fmt(self.high, signed=True)}"

    def needed(self) -> tuple[int, int] | None:
        """(prompts, seeds a side) that would make the interval exclude 0 if the difference and the
        spread stayed as observed: the interval's half-width shrinks as 1/√n of what is added, and
        the larger of the two variance parts is scaled. None where nothing can be said (established,
        no valid prompt, or no difference at all)."""
        if self.is_effect or self.prompts == 0 or self.difference == 0 or math.isnan(self.low):
            return None
        half = max((self.high - self.low) / 2, 1e-12)
        factor = (half / abs(self.difference)) ** 2 * 1.1  # a tenth more: the interval must clear 0
        seeds = max(self.seeds_a, self.seeds_b)
        prompts = max(MIN_PROMPTS, self.prompts)
        if self.seed_variance > self.prompt_variance:
            return prompts, max(seeds + 1, math.ceil(seeds * factor))
        return max(prompts, math.ceil(self.prompts * factor)), seeds

    def __str__(self) -> str:
        if self.prompts == 0:
            return fmt(math.nan)
        return f"{fmt(self.difference, signed=True)} ({self.interval_text()}, {self.prompts} prompts)"
