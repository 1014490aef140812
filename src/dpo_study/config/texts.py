"""The texts a study feeds its model (prompts, answers, system prompts, judge texts) and the ids that key
its tables, checked at parse time; one home for each text rule.

- Ids: no control, zero-width or bidirectional characters (``52`` and ``52`` + U+200B look the same in
  every table but are two ids).
- Texts: no control characters besides tab and line breaks; not blank once the invisible characters
  (zero-width spaces, bidirectional marks ...) are removed; two answers of a pair that differ only in
  invisible characters are the same answer.
- Chat-template control tokens: the special tokens of the tokenizer the study loads (read from its
  files, no transformers import), plus the ``<|...|>`` forms most templates use; such a token inside a
  text would become a real turn boundary in training and generation.
- Lengths: system prompt, prompt and answer together must fit ``model.max_seq_length``: counted with the
  model's tokenizer when it is on disk, else bounded by characters (no token covers more than 16).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from dpo_study.config.errors import ConfigError, render

# Chat-template control tokens of the common families: Llama-3, ChatML (Qwen), Llama-2/Mistral,
# Gemma, Phi-3, DeepSeek (full-width bars); plus any `<|...|>` token, the form most templates use.
SPECIAL_TOKEN = re.compile(
    r"<\|[A-Za-z0-9_]{1,40}\|>|<｜[^<>｜]{1,40}｜>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>|<\|?(?:bos|eos|pad)\|?>",
)
# The embedded demo model's tokenizer (stages/demo_model.py builds it with these): Llama-3's.
DEMO_SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                       "<|eot_id|>", "<|finetune_right_pad_id|>")
# A chat template adds a few dozen tokens around the texts; no tokenizer needs more than this many
# characters for one token, so a longer text cannot fit whatever the model.
MAX_CHARS_PER_TOKEN = 16
ALLOWED_CONTROLS = {"\t", "\n", "\r"}
# Unicode categories: Cc control, Cf format (zero-width, bidirectional), Cs surrogate, Co private use,
# Zl/Zp line/paragraph separators.
INVISIBLE_CATEGORIES = {"Cf", "Cc", "Cs", "Co", "Zl", "Zp"}


def is_invisible(char: str) -> bool:
    return unicodedata.category(char) in INVISIBLE_CATEGORIES and char not in ALLOWED_CONTROLS


def visible(text: str) -> str:
    """The text without its invisible characters, trimmed: what a reader sees."""
    if text.isprintable():  # no control, format or separator character but the space (fast, in C)
        return text.strip()
    return "".join(c for c in text if not is_invisible(c)).strip()


def where(path, index: int | None, row: dict | None, field: str) -> str:
    if index is None:
        return f"{path}: {field}"
    ident = f" (id {render(row.get('id'))})" if isinstance(row, dict) and "id" in row else ""
    return f"{path}: row {index}{ident}, field {field!r}"


def char_name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, unicodedata.category(char))}"


def check_id(value, path, index: int) -> None:
    """An id names a row in every table: printable characters only."""
    if not isinstance(value, str):
        return
    bad = [c for c in value if unicodedata.category(c) in INVISIBLE_CATEGORIES or (c.isspace() and c != " ")]
    if bad:
        raise ConfigError(f"{path}: row {index}, field 'id' = {render(value)}: holds the invisible character "
                          f"{char_name(bad[0])}; ids may hold only visible characters (it would look like another id)")


def check_text(text, path, index, row, field: str) -> None:
    """No control characters (tab and line breaks are fine), and not blank once invisible ones are gone."""
    if not isinstance(text, str):
        return
    if text.isprintable():
        if not text.strip():
            raise ConfigError(f"{where(path, index, row, field)} = {render(text)}: blank; write the text")
        return
    controls = [c for c in text if unicodedata.category(c) in ("Cc", "Cs") and c not in ALLOWED_CONTROLS]
    if controls:
        raise ConfigError(f"{where(path, index, row, field)}: holds the control character {char_name(controls[0])}; "
                          "remove it (tab and line breaks are fine)")
    if not visible(text):
        raise ConfigError(f"{where(path, index, row, field)} = {render(text)}: blank once invisible characters "
                          "(spaces, zero-width and bidirectional marks) are removed; write the text")


def check_texts(rows: list[dict], fields, path, id_field: str | None = "id") -> None:
    """Every row's id and text fields (check_id, check_text)."""
    for index, row in enumerate(rows):
        if id_field and isinstance(row, dict):
            check_id(row.get(id_field), path, index)
        for field in fields:
            check_text(row.get(field), path, index, row, field)


def check_pair_texts(rows: list[dict], path) -> None:
    """A preference pair needs two different answers, as a reader sees them."""
    for index, row in enumerate(rows):
        if visible(row["support"]) == visible(row["oppose"]):
            raise ConfigError(
                f"{path}: row {index} (id {render(row['id'])}), fields 'support' and 'oppose': "
                "must be different answers (they are the same text, but for spaces or invisible characters)"
            )


# ---- chat-template control tokens ---------------------------------------------------------


def tokenizer_special_tokens(folder: str | Path) -> set[str]:
    """The special tokens a model folder's tokenizer declares (tokenizer.json's and
    tokenizer_config.json's added tokens marked special, and the named bos/eos/pad/... tokens)."""
    folder = Path(folder)
    tokens: set[str] = set()

    def content(token):
        return token.get("content") if isinstance(token, dict) else token

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        file = folder / name
        if not file.is_file():
            continue
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            raise ConfigError(f"{file}: not readable JSON; the model folder's tokenizer cannot load") from None
        if not isinstance(document, dict):
            continue
        added = document.get("added_tokens") or []
        decoder = document.get("added_tokens_decoder") or {}
        for token in [*added, *(decoder.values() if isinstance(decoder, dict) else [])]:
            if isinstance(token, dict) and token.get("special") and isinstance(token.get("content"), str):
                tokens.add(token["content"])
        for key, value in document.items():
            if key.endswith("_token") and isinstance(content(value), str):
                tokens.add(content(value))
            if key == "additional_special_tokens" and isinstance(value, list):
                tokens.update(content(v) for v in value if isinstance(content(v), str))
    return {t for t in tokens if t.strip()}


def special_token_pattern(model_tokens=()) -> re.Pattern:
    """The generic forms and the model's own special tokens, longest first."""
    own = sorted({t for t in model_tokens if t}, key=len, reverse=True)
    return re.compile("|".join([*(re.escape(t) for t in own), SPECIAL_TOKEN.pattern]))


def check_no_special_tokens(rows: list[dict], fields, path, pattern: re.Pattern | None = None) -> None:
    """Reject a row whose prompt or answer holds a chat-template control token."""
    pattern = pattern or SPECIAL_TOKEN
    for index, row in enumerate(rows):
        for field in fields:
            text = row.get(field)
            if not isinstance(text, str):
                continue
            found = sorted(set(pattern.findall(text)))
            if found:
                raise ConfigError(
                    f"{where(path, index if 'id' in row else None, row, field)}: holds the chat-template control "
                    f"token{'s' if len(found) > 1 else ''} {', '.join(found)}, which would end or open a turn; remove "
                    "it (or write it differently, e.g. with spaces)"
                )


# ---- lengths ---------------------------------------------------------------------------------


def check_text_lengths(files: dict, system_prompt: str, max_seq_length: int, tokenizer_file=None,
                       system_source: str = "config") -> None:
    """Each row's system prompt (its own ``system`` or ``system_prompt``), prompt and longest answer
    together must fit ``max_seq_length`` tokens. ``files``: ``{path: (rows, prompt fields, answer fields)}``;
    ``system_source``: the config file that sets ``data.system_prompt``."""
    tokenizer = None
    if tokenizer_file:
        from tokenizers import Tokenizer  # a small Rust library, no ML framework

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    chars = max_seq_length * MAX_CHARS_PER_TOKEN

    def count(text: str) -> int:
        if tokenizer is None:
            return len(text)
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    counted: dict[str, int] = {}  # the system prompt is the same for most rows
    if len(system_prompt) > max_seq_length // 2:
        counted[system_prompt] = count(system_prompt)
        if (len(system_prompt) > chars) if tokenizer is None else (counted[system_prompt] > max_seq_length):
            size = f"{len(system_prompt)} characters" if tokenizer is None else f"{counted[system_prompt]} tokens"
            raise ConfigError(f"{system_source}: data.system_prompt: {size}; with every prompt it must fit "
                              f"model.max_seq_length = {max_seq_length} tokens")
    for path, (rows, fields, answers) in files.items():
        for index, row in enumerate(rows):
            system = row.get("system") or system_prompt
            parts = [row.get(f) for f in fields] + [max((row.get(a) or "" for a in answers), key=len, default="")]
            texts = [system, *(p for p in parts if isinstance(p, str))]
            total_chars = sum(map(len, texts))
            if total_chars <= max_seq_length // 2:  # fits whatever the tokenizer: skip the encoding
                continue
            longest = max((f for f in (*fields, *answers) if isinstance(row.get(f), str)), key=lambda f: len(row[f]))
            alongside = "with the system prompt" + (" and the prompt" if longest != "prompt" else "") + (
                " and the longest answer" if answers and longest == "prompt" else "")
            if tokenizer is None:
                if total_chars > chars:
                    raise ConfigError(
                        f"{where(path, index, row, longest)}: {total_chars} characters {alongside}; cannot fit "
                        f"model.max_seq_length = {max_seq_length} tokens (at most {MAX_CHARS_PER_TOKEN} characters a token)"
                    )
                continue
            if system not in counted:
                counted[system] = count(system)
            tokens = counted[system] + sum(count(t) for t in texts[1:])
            if tokens > max_seq_length:
                raise ConfigError(
                    f"{where(path, index, row, longest)}: {tokens} tokens {alongside}; must fit "
                    f"model.max_seq_length = {max_seq_length}"
                )
