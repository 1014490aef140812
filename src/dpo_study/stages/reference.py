"""Reference log-probs computed once before training instead of once a step.

With a LoRA adapter the reference model is the base model, which the loop does not change: its
log-probs of every pair can be computed in one inference pass and reused in every epoch, which
saves one forward pass per step and epoch. TRL's own ``precompute_ref_log_probs`` does the same but
first hashes every weight of the model on the CPU to name a cache file (over a minute for an 8B
model); here the pass uses TRL's own ``compute_ref_log_probs`` on the trainer's collated batches
and keeps the result in memory.
"""

from __future__ import annotations

import logging
import time

import torch

log = logging.getLogger(__name__)


def attach_reference_logps(trainer, batch_size: int) -> float:
    """Add ``ref_chosen_logps``/``ref_rejected_logps`` to the trainer's dataset; returns the seconds spent."""
    from torch.utils.data import DataLoader

    start = time.perf_counter()
    dataset = trainer.train_dataset
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=trainer.data_collator, shuffle=False)
    model = trainer.model
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    device = trainer.accelerator.device
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            ref_chosen, ref_rejected = trainer.compute_ref_log_probs(model, batch)
            chosen += ref_chosen.float().cpu().tolist()
            rejected += ref_rejected.float().cpu().tolist()
    model.train(was_training)
    trainer.train_dataset = dataset.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)
    # The loss then reads the columns instead of running the reference forward pass.
    trainer.precompute_ref_logps = True
    seconds = time.perf_counter() - start
    log.info("reference log-probs of %d pairs in %.2f s", len(chosen), seconds)
    return seconds
