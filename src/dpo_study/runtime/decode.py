"""Greedy decoding with a static KV cache, each decode step replayed as one CUDA graph on a GPU.

Plain ``generate`` spends most of an 8B model's decode step launching kernels one by one from
Python (~190 ms a step for 70 prompts on the H200 that BENCHMARKS.md measured, against a ~4 ms
memory floor); transformers' own compiled decode removes that but compiles for ~100 s in every job.
Here the step is captured once (a second or two) and replayed: the same kernels, no compiler.

The step reads only fixed buffers (the next tokens, their positions, a 4-D attention mask over the
whole cache) and the static cache advances its own write position on the device, so replaying the
graph is the same computation as running the step eagerly; the CPU path runs it eagerly.
Masking follows transformers': a token sees the prompt's real tokens and what came after it, never
padding; positions count real tokens only.
"""

from __future__ import annotations

import inspect
import logging

import torch

log = logging.getLogger(__name__)


def cached_forward(model):
    """The causal LM under a PEFT wrapper (its LoRA layers stay active) and its cache argument's name."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return model, cache_argument


def capture(step):
    """(graph, output) for the step: each replay refills ``output``; None if the step cannot be captured."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            output = step()
    except Exception as error:  # e.g. an op that syncs with the host cannot be captured: decode eagerly
        log.warning("decode step not capturable as a CUDA graph (%s); decoding without it", error)
        return None
    return graph, output


def warm_up(step) -> torch.Tensor:
    """One eager step on a side stream: initialises the lazy state (cuBLAS workspaces) capture needs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        output = step()
    torch.cuda.current_stream().wait_stream(side)
    return output


def greedy_decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                  stop_ids: list[int], use_graph: bool, check_every: int = 8) -> tuple[torch.Tensor, bool]:
    """(new token ids (batch, <= max_new_tokens), whether a CUDA graph ran) for a left-padded batch.

    Rows go on after their stop token (the caller cuts there); decoding ends early once all have stopped.
    """
    from transformers import StaticCache

    model, cache_argument = cached_forward(model)
    use_graph = use_graph and input_ids.is_cuda
    batch, width = input_ids.shape
    length = width + max_new_tokens
    device = input_ids.device
    cache = StaticCache(config=model.config, max_cache_len=length)
    real = attention_mask.bool()

    # Prefill: causal over the prompt, padding masked; a padding query sees itself (no empty softmax row).
    slots = torch.arange(length, device=device)
    query = torch.arange(width, device=device)[:, None]
    keys_real = torch.zeros(batch, length, dtype=torch.bool, device=device)
    keys_real[:, :width] = real
    prefill_mask = (slots[None, :] <= query) & keys_real[:, None, :]
    prefill_mask |= slots[None, :] == query
    positions = attention_mask.long().cumsum(-1) - 1
    positions.masked_fill_(~real, 1)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=prefill_mask[:, None], position_ids=positions,
                       use_cache=True, logits_to_keep=1, **{cache_argument: cache}).logits
    tokens = torch.empty(batch, max_new_tokens, dtype=torch.long, device=device)
    tokens[:, 0] = logits[:, -1].argmax(-1)

    # Decode buffers: the step's input token, its position, and the mask row over every cache slot.
    step_tokens = tokens[:, :1].clone()
    step_positions = positions[:, -1:] + 1
    step_mask = keys_real[:, None, None, :].clone()
    stops = torch.tensor(stop_ids, device=device)

    def step() -> torch.Tensor:
        return model(input_ids=step_tokens, attention_mask=step_mask, position_ids=step_positions,
                     use_cache=True, **{cache_argument: cache}).logits[:, -1].argmax(-1)

    captured = None
    with torch.inference_mode():
        for t in range(1, max_new_tokens):
            step_mask[..., width + t - 1] = True  # the slot this step writes
            if use_graph and t == 2:
                captured = capture(step)  # records step 2 without running it; replayed below
            if captured is not None:
                captured[0].replay()
                next_tokens = captured[1]
            elif use_graph and t == 1:
                next_tokens = warm_up(step)
            else:
                next_tokens = step()
            tokens[:, t] = next_tokens
            step_tokens.copy_(next_tokens[:, None])
            step_positions += 1
            if t % check_every == 0 and torch.isin(tokens[:, : t + 1], stops).any(-1).all():
                return tokens[:, : t + 1], captured is not None
    return tokens, captured is not None
