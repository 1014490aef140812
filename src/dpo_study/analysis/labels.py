"""How numbers and metric names are written in every table, page, plot and the findings."""

from __future__ import annotations

import math

# Readable names with units of the metrics the study writes; others show their column name.
METRIC_LABELS = {
    "support_rate": "support rate (share of valid answers judged support)",
    "neutral_rate": "neutral rate (share of valid answers judged neutral)",
    "valid_rate": "valid answers (share of all answers)",
    "mean_chars": "mean answer length (characters)",
    "chars": "mean answer length (characters)",
    "support_score": "mean support probability (0 to 1)",
    "stance_changed": "share of valid answer pairs whose stance changed",
    "train_loss": "mean DPO training loss",
    "final_loss": "final DPO loss",
    "rewards_margins": "final reward margin (β-scaled log-ratio)",
    "rewards_accuracies": "final reward accuracy (share of pairs)",
    "eval_rewards_margins": "held-out reward margin (β-scaled log-ratio)",
    "eval_rewards_accuracies": "held-out reward accuracy (share of pairs)",
    "perplexity": "perplexity under the base model",
    "loss_spikes": "loss spikes (steps)",
    "max_grad_norm": "largest gradient norm",
    "train_seconds": "training time (s)",
}
# Shown first, in this order; other metrics follow in their table order.
METRIC_ORDER = ["support_rate", "neutral_rate", "valid_rate", "mean_chars", "chars", "support_score",
                "stance_changed", "perplexity", "train_loss", "rewards_margins", "rewards_accuracies",
                "eval_rewards_margins", "eval_rewards_accuracies", "loss_spikes", "max_grad_norm"]
# Axis labels with units per experiment parameter.
PARAM_LABELS = {
    "num_epoch": "epochs (num_epoch)",
    "data_size": "preference pairs (data_size)",
    "support_ratio": "share of pairs preferring support (support_ratio)",
    "beta": "DPO β (strength of the pull towards the reference model)",
    "lora_r": "LoRA rank r",
    "lora_alpha": "LoRA α (scaling numerator)",
    "learning_rate": "learning rate",
    "strategy": "rejected-example strategy",
}
NOT_APPLICABLE = "n/a"


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


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value, signed: bool = False) -> str:
    """Three significant figures (whole numbers from 1000 on), a real minus sign, 'n/a' for none."""
    if missing(value):
        return NOT_APPLICABLE
    value = float(value)
    if abs(value) < 1e-12:  # floating noise (a bootstrap bound of -2.2e-17), and -0
        value = 0.0
    sign = "+" if signed else ""
    text = f"{value:{sign}.0f}" if abs(value) >= 1000 else f"{value:{sign}.3g}"
    return text.replace("-", "−")


def plural(count: float, word: str) -> str:
    if count == 1:
        return f"{fmt(count)} {word}"
    return f"{fmt(count)} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"
