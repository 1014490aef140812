"""The study's statistics, in one place: seed groups, paired before/after changes, intervals.

- A *seed group* is the experiments that differ only in ``seed``; a metric over it is an
  ``Estimate``: mean, sample standard deviation and n, plus a t interval from 3 seeds on.
- A *change* is measured over prompts: before vs after DPO on the same prompts (paired), or
  experiment b vs experiment a on the same prompts. Its interval is a percentile bootstrap over
  prompts (scipy.stats.bootstrap, seeded, so tables are reproducible) and its p-value the exact
  two-sided sign test on the prompts that moved (for 0/1 outcomes such as "judged support" this is
  the exact McNemar test). A change is called an effect only when its interval excludes 0 and the
  sign test rejects "no change" at the same level (a bootstrap over 2 prompts that both moved gives
  the interval [1, 1], yet two prompts cannot establish anything: p = 0.5).
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
    """The mean of a boolean (or 0/1) series over its non-missing values; NaN when none is left."""
    values = pd.Series(values, dtype="Float64").dropna()
    return float(values.mean()) if len(values) else math.nan


def percent(value: float) -> str:
    return f"{round(100 * value)}%"


SPIKE_FACTOR = 2.0
SPIKE_WINDOW = 5


def loss_spikes(losses) -> int:
    """Training steps whose loss is over SPIKE_FACTOR times the mean of the SPIKE_WINDOW steps before."""
    losses = pd.Series(losses, dtype=float).reset_index(drop=True)
    before = losses.shift(1).rolling(SPIKE_WINDOW, min_periods=SPIKE_WINDOW).mean()
    return int((losses > SPIKE_FACTOR * before).sum())


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


# ---- changes over prompts ----------------------------------------------------------------


def bootstrap_interval(values) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (missing values dropped)."""
    values = pd.Series(values, dtype=float).dropna().to_numpy()
    if len(values) == 0:
        return math.nan, math.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])  # every resample has this mean
    result = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                             method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def sign_test(differences) -> float:
    """Exact two-sided sign test of paired differences (McNemar's exact test for 0/1 outcomes)."""
    values = pd.Series(differences, dtype=float).dropna()
    up, down = int((values > 0).sum()), int((values < 0).sum())
    if up + down == 0:
        return 1.0
    return float(stats.binomtest(up, up + down, 0.5).pvalue)


@dataclass(frozen=True)
class Change:
    """A change measured over paired prompts: its mean, interval, sign-test p-value and counts."""

    difference: float
    low: float
    high: float
    p_value: float
    prompts: int  # pairs measured
    excluded: int  # pairs left out: an answer of the pair is not a valid measurement

    @classmethod
    def paired(cls, first, second) -> Change:
        """second − first, prompt by prompt; a pair with a missing side is excluded."""
        pairs = pd.DataFrame({"first": pd.Series(first, dtype=float).to_numpy(),
                              "second": pd.Series(second, dtype=float).to_numpy()})
        both = pairs.dropna()
        differences = both["second"] - both["first"]
        if both.empty:
            return cls(math.nan, math.nan, math.nan, math.nan, 0, len(pairs))
        low, high = bootstrap_interval(differences)
        return cls(round(float(differences.mean()), 12), low, high, sign_test(differences), len(both),
                   len(pairs) - len(both))

    @property
    def interval_excludes_zero(self) -> bool:
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)

    @property
    def is_effect(self) -> bool:
        """The interval excludes 0 and the sign test's p-value is below 1 − CONFIDENCE."""
        return self.interval_excludes_zero and self.p_value < 1 - CONFIDENCE

    def interval_text(self) -> str:
        return f"{percent(CONFIDENCE)} CI {fmt(self.low, signed=True)} to {fmt(self.high, signed=True)}"

    def __str__(self) -> str:
        if self.prompts == 0:
            return fmt(math.nan)
        return f"{fmt(self.difference, signed=True)} ({self.interval_text()}, {self.prompts} prompts)"
