"""Rejected-example strategies: how each preference pair's chosen and rejected texts are built.

A strategy is a function ``(row, preferred, context) -> (chosen, rejected)`` registered under a
name; ``preferred`` is the stance the homework's rule assigns to the row ("support" or "oppose").
Strategies that need more than the row (a random generator, the base model's own answers) find it
in the context.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

STANCES = ("support", "oppose")


@dataclass
class StrategyContext:
    seed: int = 42
    base_responses: dict = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self):
        self.rng = random.Random(self.seed)


StrategyFn = Callable[[dict, str, StrategyContext], tuple[str, str]]
STRATEGIES: dict[str, StrategyFn] = {}


def register(name: str):
    def decorator(fn: StrategyFn) -> StrategyFn:
        STRATEGIES[name] = fn
        return fn

    return decorator


def opposite(stance: str) -> str:
    return STANCES[1 - STANCES.index(stance)]


@register("swap")
def swap(row: dict, preferred: str, context: StrategyContext) -> tuple[str, str]:
    """The homework's: chosen = the preferred stance's answer, rejected = the other stance's."""
    return row[preferred], row[opposite(preferred)]


def get(name: str) -> StrategyFn:
    if name not in STRATEGIES:
        raise KeyError(f"strategy: unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name]
