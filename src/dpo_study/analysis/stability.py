"""Training stability: the steps whose loss jumped. Its own module because the training stage
imports it: a change to the study's statistics must not change the training jobs' code version."""

from __future__ import annotations

import pandas as pd

SPIKE_FACTOR = 2.0
SPIKE_WINDOW = 5


def loss_spikes(losses) -> int:
    """Training steps whose loss is over SPIKE_FACTOR times the mean of the SPIKE_WINDOW steps before."""
    losses = pd.Series(losses, dtype=float).reset_index(drop=True)
    before = losses.shift(1).rolling(SPIKE_WINDOW, min_periods=SPIKE_WINDOW).mean()
    return int((losses > SPIKE_FACTOR * before).sum())
