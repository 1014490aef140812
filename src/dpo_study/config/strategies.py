"""Rejected-example strategies: how each preference pair's chosen and rejected texts are built.

A strategy is a function ``(row, preferred, context) -> (chosen, rejected)`` registered under a
name; ``preferred`` is the stance the homework's rule assigns to the row ("support" or "oppose":
the first ``int(data_size * support_ratio)`` rows prefer support), so every strategy combines with
``support_ratio`` the same way. Strategies that need more than the row (the other selected rows, a
seeded random generator, the base model's own answers) find it in the context.

Where the rejected text comes from, per strategy:

- the data itself: ``swap`` and ``balanced`` (the other stance's answer);
- templates written by this project (``HEDGE_TEMPLATES`` and so on below): ``hedge``, ``verbose``,
  ``off_topic``, ``refusal``;
- the base model: ``on_policy`` (its greedy answer to the training prompt, generated once);
- ``mix``: each row from one of the above, drawn with the configured weights and the seed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STANCES = ("support", "oppose")


@dataclass
class StrategyContext:
    """What a strategy may use besides the row.

    ``rows``: the selected rows in order, set by ``select`` (positions pick templates; ``balanced``
    counts ambiguous rows); ``base_responses``: the base model's answer per row id (``on_policy``);
    ``mix_weights`` and ``rng`` (seeded by ``seed``): ``mix``'s draw. ``picked`` records, per row
    id, which strategy ``mix`` used for it.
    """

    seed: int = 42
    base_responses: dict[str, str] = field(default_factory=dict)
    mix_weights: dict[str, float] = field(default_factory=dict)
    rows: list[dict] = field(init=False, default_factory=list)
    rng: random.Random = field(init=False)
    picked: dict[str, str] = field(init=False, default_factory=dict)
    _position: dict = field(init=False, default_factory=dict)
    _ambiguous_rank: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def select(self, rows: list[dict]) -> None:
        self.rows = rows
        self._position = {row["id"]: index for index, row in enumerate(rows)}
        ambiguous = [row["id"] for row in rows if row.get("ambiguous")]
        self._ambiguous_rank = {row_id: rank for rank, row_id in enumerate(ambiguous)}

    def position(self, row: dict) -> int:
        """The row's index among the selected rows."""
        return self._position[row["id"]]

    def ambiguous_rank(self, row: dict) -> int:
        """The row's index among the selected rows marked ambiguous."""
        return self._ambiguous_rank[row["id"]]


StrategyFn = Callable[[dict, str, StrategyContext], tuple[str, str]]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its function and what it needs, so the workflow can plan for it."""

    name: str
    build: StrategyFn
    seeded: bool = False  # the pairs change with the experiment's seed
    needs_base_responses: bool = False  # the base model's answers to the training prompts
    needs_ambiguous_rows: bool = False

    def __call__(self, row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
        return self.build(row, preferred, context)


STRATEGIES: dict[str, Strategy] = {}


def register(name: str, **needs):
    def decorator(fn: StrategyFn) -> StrategyFn:
        STRATEGIES[name] = Strategy(name, fn, **needs)
        return fn

    return decorator


def get(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(f"strategy: unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name]


def components(name: str, mix_weights: dict | None = None) -> list[str]:
    """The strategies that build an experiment's pairs: ``mix``'s weighted ones, else itself."""
    return sorted(mix_weights or {}) if name == "mix" else [name]


def needs_base_responses(name: str, mix_weights: dict | None = None) -> bool:
    return any(get(c).needs_base_responses for c in components(name, mix_weights))


def opposite(stance: str) -> str:
    return STANCES[1 - STANCES.index(stance)]


def template(templates: tuple[str, ...], row: dict, context: StrategyContext) -> str:
    """Templates are used in turn along the selected rows, so a pair set shows all of them."""
    return templates[context.position(row) % len(templates)]


# Over-neutral answers that take no side; short, so that only the stance differs from chosen.
HEDGE_TEMPLATES = (
    "There are good points on both sides, and in the end it depends on your own point of view.",
    "It's a complex question; some people agree, others disagree, and each side has its reasons.",
    "Opinions differ widely here, and I can see merit in each view, so I won't take a position.",
    "It really depends on the situation and on who you ask; there is no single right answer.",
    "Both views are understandable and reasonable people disagree, so it is hard to say either way.",
)

# Appended to the chosen answer: the same stance, but far past the 100-character instruction.
VERBOSE_TEMPLATES = (
    " To explain this properly, I want to walk through the history of the question, the main arguments"
    " that people raise, the likely consequences for everyone involved, and several concrete examples,"
    " because a short reply cannot do justice to every nuance of an issue like this one.",
    " Let me expand on that at some length: first the background, then the reasons behind my view, then"
    " the strongest objections and my replies to them, and finally a summary of what all of this means"
    " in practice for artists, audiences, companies and everyone else who cares about it.",
    " There is much more to say, so here is a longer explanation covering the context, the evidence on"
    " each point, the views of experts and ordinary fans, the legal and economic aspects, and the"
    " questions that remain open, since all of them matter for a complete and careful answer.",
)

# Fluent answers about something else entirely.
OFF_TOPIC_TEMPLATES = (
    "The weather has been lovely lately, perfect for a long walk in the park after lunch.",
    "My favourite breakfast is toast with butter and a cup of strong black coffee.",
    "Regular stretching before exercise helps prevent injuries and keeps muscles flexible.",
    "Trains are a comfortable way to travel between cities, and you can read on the way.",
    "Tomatoes grow best in full sun with steady watering and a little support for the stems.",
)

# Refusals to a harmless question.
REFUSAL_TEMPLATES = (
    "I'm sorry, but I can't help with that request.",
    "As an AI, I don't share opinions on topics like this one.",
    "I'd rather not answer that question. Is there something else I can help you with?",
    "Sorry, I am not able to discuss this subject.",
)


@register("swap")
def swap(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """The homework's. Chosen: the preferred stance's answer; rejected: the other stance's answer
    (from the data)."""
    return row[preferred], row[opposite(preferred)]


@register("hedge")
def hedge(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """Against over-neutral answers. Chosen: the preferred stance's answer; rejected: an answer that
    takes no side (project-written ``HEDGE_TEMPLATES``, in turn along the rows)."""
    return row[preferred], template(HEDGE_TEMPLATES, row, context)


@register("verbose")
def verbose(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """Against breaking the 100-character instruction. Chosen: the preferred stance's answer;
    rejected: the same answer followed by a long elaboration (project-written ``VERBOSE_TEMPLATES``),
    so the pair differs in length only."""
    return row[preferred], row[preferred] + template(VERBOSE_TEMPLATES, row, context)


@register("off_topic")
def off_topic(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """Against answering beside the question. Chosen: the preferred stance's answer; rejected: a
    fluent answer about something unrelated (project-written ``OFF_TOPIC_TEMPLATES``)."""
    return row[preferred], template(OFF_TOPIC_TEMPLATES, row, context)


@register("refusal")
def refusal(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """Against refusing a harmless question. Chosen: the preferred stance's answer; rejected: a
    refusal (project-written ``REFUSAL_TEMPLATES``)."""
    return row[preferred], template(REFUSAL_TEMPLATES, row, context)


@register("on_policy", needs_base_responses=True)
def on_policy(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """Against what the model says today. Chosen: the preferred stance's answer; rejected: the base
    model's own answer to the training prompt (generated once per model and generation settings,
    greedy by default). Where that answer is the chosen text itself (a model that already says it),
    the pair would teach nothing, so the other stance's answer is rejected instead, as in ``swap``."""
    key = str(row["id"])
    if key not in context.base_responses:
        raise KeyError(f"strategy on_policy: no base-model answer for training row id {row['id']!r}")
    answer = context.base_responses[key]
    if answer.strip() == row[preferred].strip():
        log.info("on_policy: row %s: the base answer is the chosen answer; rejecting the other stance", key)
        return swap(row, preferred, context)
    return row[preferred], answer


@register("balanced", needs_ambiguous_rows=True)
def balanced(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """No one-sidedness on prompts without a right answer. On rows the data marks ``ambiguous``,
    the chosen stance alternates support, oppose, support, ... in row order, whatever
    ``support_ratio`` says, so those prompts push neither way; other rows are exactly ``swap``.
    Rejected: the other stance's answer (from the data)."""
    if row.get("ambiguous"):
        preferred = STANCES[context.ambiguous_rank(row) % 2]
    return swap(row, preferred, context)


@register("mix", seeded=True)
def mix(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """Several defects at once. Each row's pair is built by one strategy drawn with the configured
    ``mix_weights`` from a generator seeded with the experiment's seed (one draw per row, in row
    order, so a smaller data_size gets a prefix of the same draws); its rejected text comes from
    wherever that strategy's does."""
    names = sorted(context.mix_weights)
    if not names:
        raise ValueError("strategy mix: no mix_weights given")
    name = context.rng.choices(names, weights=[context.mix_weights[n] for n in names])[0]
    context.picked[str(row["id"])] = name
    return get(name)(row, preferred, context)
