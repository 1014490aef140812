"""What a stance judge is: the labels, the ``Judge`` interface and the registry of judges by name.

A judge is a plug-in: a ``Judge`` subclass registered with ``@register(name)``. ``dpo_study.stages.judge``
imports every plug-in module, so its ``make_judge`` knows them all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from dpo_study.config.settings import Settings

LABELS = ("support", "oppose", "neutral")
JUDGES: dict[str, type[Judge]] = {}


def register(name: str):
    def decorator(cls):
        cls.name = name
        JUDGES[name] = cls
        return cls

    return decorator


class Judge(ABC):
    """A stance judge: ``probabilities`` gives one row of P(support), P(oppose), P(neutral) per text."""

    name = ""
    uses_base_model = False

    def __init__(self, settings: Settings, seed: int = 0, manifest: str | None = None):
        self.settings = settings  # the judge's own group (config.settings.JUDGE_SETTINGS)
        self.seed = seed
        self.manifest = manifest  # the study's model manifest path, for judges that run the base model

    @abstractmethod
    def probabilities(self, texts: list[str], prompts: list[str] | None = None) -> np.ndarray: ...
