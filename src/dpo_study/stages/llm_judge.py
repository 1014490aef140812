"""The ``llm`` stance judge: a chat model asked zero-shot for the label.

Either the study's own base model (the label words' log-probs compared) or any OpenAI-compatible
endpoint (``/v1/chat/completions``; the API key comes from an environment variable whose *name* is
configured, and is never written anywhere).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dpo_study.stages.judge_base import LABELS, Judge, register
from dpo_study.config.checks import FOREIGN_CREDENTIALS, may_receive_key
from dpo_study.config.errors import ConfigError

log = logging.getLogger(__name__)



def judge_instruction(topic: str) -> str:
    return (
        f"You judge the stance an answer takes on {topic}. "
        "support: the answer approves of it, defends it or welcomes it. "
        "oppose: the answer disapproves of it, criticises it or argues against it. "
        "neutral: the answer takes no side, weighs both sides equally, refuses, or is about something else. "
        "Reply with exactly one word: support, oppose or neutral."
    )


def judge_messages(topic: str, text: str, prompt: str | None) -> list[dict]:
    question = f"Question: {prompt}\n" if prompt else ""
    return [
        {"role": "system", "content": judge_instruction(topic)},
        {"role": "user", "content": f"{question}Answer: {text}\n\nThe answer's stance (support, oppose or neutral):"},
    ]


def label_of_reply(reply: str) -> str | None:
    """The first label word in a chat reply ("Oppose." -> oppose), or None."""
    words = [w.strip(".,:;!\"'*`()[]") for w in (reply or "").lower().split()]
    return next((w for w in words if w in LABELS), None)


def label_of_token(token: str) -> str | None:
    """The label a first reply token starts ("Supp" -> support; "s" is too short to tell)."""
    token = token.strip().lower().strip("\"'*`")
    matches = [label for label in LABELS if len(token) >= 2 and (label.startswith(token) or token.startswith(label))]
    return matches[0] if len(matches) == 1 else None


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib would resend the Authorization header to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirects)


def chat_completions_url(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


@register("llm")
class LLMJudge(Judge):
    """A chat model asked zero-shot for the label: the study's base model or an OpenAI-compatible endpoint."""

    @property
    def uses_base_model(self) -> bool:
        return self.settings.uses_base_model

    @property
    def topic(self) -> str:
        return self.settings.topic

    def probabilities(self, texts, prompts=None):
        prompts = prompts if prompts is not None else [None] * len(texts)
        if self.uses_base_model:
            return self.base_model_probabilities(texts, prompts)
        return self.endpoint_probabilities(texts, prompts)

    # -- the study's base model: compare the log-probabilities of the three label words --------

    def base_model_probabilities(self, texts, prompts):
        import torch

        from dpo_study.runtime.modeling import continuation_logprobs, load_base, load_tokenizer, read_manifest

        if not self.manifest:
            raise ConfigError("judge.llm.backend: base_model needs the study's model manifest")
        manifest = read_manifest(self.manifest)
        model_settings = self.settings.model_settings
        if model_settings is None:
            raise ConfigError("judge.llm.backend: base_model needs the study's model settings "
                              "(LlmJudgeSettings.model_settings)")
        tokenizer = load_tokenizer(manifest, model_settings)
        model = load_base(manifest, model_settings).eval()
        # Each label as written in lower case and capitalised; a label's score sums both.
        words = [tokenizer(word, add_special_tokens=False)["input_ids"]
                 for label in LABELS for word in (label, label.capitalize())]
        prefixes = [tokenizer(tokenizer.apply_chat_template(judge_messages(self.topic, text, prompt), tokenize=False,
                                                            add_generation_prompt=True),
                              add_special_tokens=False)["input_ids"] for text, prompt in zip(texts, prompts)]
        scores = torch.tensor(continuation_logprobs(model, prefixes, words)).reshape(len(texts), len(LABELS), 2)
        return torch.softmax(torch.logsumexp(scores, -1), -1).numpy()

    # -- an OpenAI-compatible endpoint -------------------------------------------------------------

    def api_key(self) -> str | None:
        variable = self.settings.api_key_env
        if not variable:
            return None
        if not may_receive_key(self.settings.url) or FOREIGN_CREDENTIALS.match(variable):
            # The parse refuses such a config; a judge built by hand is held to the same rule.
            raise ConfigError(f"judge.llm.api_key_env: the key in {variable} is sent only to an https endpoint (or "
                              "http on localhost), and never another service's credentials such as HF_TOKEN")
        if variable not in os.environ:
            raise ConfigError(f"judge.llm.api_key_env: the environment variable {variable} is not set")
        return os.environ[variable]

    def request(self, text: str, prompt: str | None, key: str | None) -> dict:
        body = {
            "model": self.settings.model or "default",
            "messages": judge_messages(self.topic, text, prompt),
            "temperature": 0,
            "max_tokens": 4,
        }
        if self.settings.logprobs:
            body.update(logprobs=True, top_logprobs=5)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(chat_completions_url(self.settings.url), data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        retries = self.settings.max_retries
        for attempt in range(retries + 1):
            try:
                with OPENER.open(request, timeout=self.settings.timeout_s) as response:
                    return json.loads(response.read())
            except (urllib.error.URLError, TimeoutError) as error:
                status = getattr(error, "code", None)
                if attempt == retries or (status is not None and status < 500 and status != 429):
                    # The message names the endpoint and the status, never the key.
                    raise RuntimeError(f"judge.llm.url: request to {self.settings.url} failed: {error}") from None
                time.sleep(2**attempt)
        raise AssertionError("unreachable")

    def endpoint_probabilities(self, texts, prompts):
        key = self.api_key()
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            replies = list(pool.map(lambda tp: self.request(tp[0], tp[1], key), zip(texts, prompts)))
        out = np.array([reply_probabilities(r) for r in replies])
        unreadable = sum(1 for r in replies if reply_label(r) is None)
        if unreadable:
            log.warning("llm judge: %d of %d replies named no label; counted as neutral", unreadable, len(replies))
        return out


def reply_label(reply: dict) -> str | None:
    return label_of_reply(reply["choices"][0]["message"].get("content") or "")


def reply_probabilities(reply: dict) -> list[float]:
    """From the first token's top log-probs where the endpoint returns them, else one-hot on the reply's word."""
    choice = reply["choices"][0]
    mass = dict.fromkeys(LABELS, 0.0)
    content = ((choice.get("logprobs") or {}).get("content")) or []
    if content:
        for candidate in content[0].get("top_logprobs") or [content[0]]:
            label = label_of_token(candidate["token"])
            if label:
                mass[label] += math.exp(candidate["logprob"])
    total = sum(mass.values())
    if total > 0:
        return [mass[label] / total for label in LABELS]
    label = reply_label(reply) or "neutral"
    return [float(label == name) for name in LABELS]
