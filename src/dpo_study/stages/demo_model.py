"""The embedded demo model: a small Llama-architecture chat model built offline from the bundled data.

It lets the whole study run on a CPU without a model hub. The tokenizer is a byte-level BPE with
Llama-3's split pattern, special tokens and chat template; the model is trained from scratch on
chat-formatted answers, each prompt seen with its support and its oppose answer equally often, so
that it answers with stance-bearing sentences but is not pre-aligned to either stance.
"""

from __future__ import annotations

import logging
import math
import random
import time

import torch
from tqdm import tqdm

from dpo_study.config import atomic
from dpo_study.config.data_files import load_rows
from dpo_study.config.model import DEMO_MAX_POSITIONS
from dpo_study.config.texts import DEMO_SPECIAL_TOKENS
from dpo_study.config.settings import DemoModelSettings
from dpo_study.stages import demo_pretrain

log = logging.getLogger(__name__)

BOS, EOS, EOT, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, HEADER_START, HEADER_END, EOT, PAD]
assert tuple(SPECIAL_TOKENS) == DEMO_SPECIAL_TOKENS  # what the parse checks texts against
# Llama-3's pre-tokenizer split pattern.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Llama-3 Instruct's chat template (system/user/assistant turns, each closed by <|eot_id|>).
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Prompt variations, redrawn at every use: with one fixed set of copies the model memorises
# copy -> answer and garbles unseen questions.
OPENERS = ["", "", "", "Quick question: ", "I wonder, ", "Honestly, ", "Tell me: ", "Be brief: "]
SYNONYMS = {
    "ai": ["AI", "machine", "generative"],
    "art": ["art", "artwork", "images", "pictures"],
    "artists": ["artists", "illustrators", "creators", "animators"],
    "should": ["should", "must", "ought to"],
    "ethical": ["ethical", "moral", "acceptable", "fair"],
    "style": ["style", "look", "aesthetic"],
    "people": ["people", "users", "fans"],
    "images": ["images", "pictures", "artwork"],
    "use": ["use", "employ", "rely on"],
}
# Another row's question with a row's answer: none, now that the subject questions keep answers to
# unseen questions fluent (a mismatched answer teaches the model to answer beside the question).
MISMATCH_RATE = 0.0
# Shares of the examples drawn from the pretraining text (stages/demo_pretrain.py): subject
# questions, whose answers restate the question's subject, and Traditional Chinese questions; the
# rest are the training rows.
SUBJECT_RATE = 0.65
CHINESE_RATE = 0.1
# With the pretraining text, the share of training-row examples whose answer first restates the
# question as asked (an echo; subject questions: demo_pretrain.ECHO_RATE): the model then answers an
# unseen question about its own subject, not with a memorised sentence about another one.
ECHO_ROW_RATE = 0.5


def vary_parts(prompt: str, rng: random.Random, keep_words: bool = False) -> tuple[str, str]:
    """A variation of the prompt as (opener, question): synonyms and, unless ``keep_words`` (a subject
    question, whose subject the answer restates), a dropped word or two swapped; an opener drawn
    from OPENERS (often none)."""
    words = prompt.split()
    out = []
    for word in words:
        bare = word.lower().strip("?,.!")
        if bare in SYNONYMS and rng.random() < 0.3:
            replacement = rng.choice(SYNONYMS[bare])
            word = word.replace(word.strip("?,.!"), replacement)
        elif len(words) > 6 and not keep_words and rng.random() < 0.08:
            continue  # drop a word
        out.append(word)
    if len(out) > 4 and not keep_words and rng.random() < 0.15:
        i = rng.randrange(1, len(out) - 2)
        out[i], out[i + 1] = out[i + 1], out[i]
    text = " ".join(out)
    return rng.choice(OPENERS), text[0].upper() + text[1:]


def vary_prompt(prompt: str, rng: random.Random, keep_words: bool = False) -> str:
    """The prompt as the model sees it: ``vary_parts``' opener and question."""
    opener, text = vary_parts(prompt, rng, keep_words)
    return opener + (text[0].lower() + text[1:] if opener else text)


def build_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOT, pad_token=PAD,
        additional_special_tokens=[EOS, HEADER_START, HEADER_END],
    )
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    return fast


def encode_example(tokenizer, system_prompt: str, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of one chat turn and labels that train only the answer and its <|eot_id|>."""
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    prefix = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + EOT, add_special_tokens=False)["input_ids"]
    return prefix_ids + answer_ids, [-100] * len(prefix_ids) + answer_ids


def build_demo_model(
    train: str,
    test: str,
    model_dir: str,
    manifest: str,
    settings: DemoModelSettings,
    system_prompt: str,
    threads: int = 1,
    pretrain: str | None = None,
) -> None:
    """Stage: train the demo model from scratch and save it like any Hugging Face model; ``pretrain``:
    the demo-only pretraining text (stages/demo_pretrain.py), none by default."""
    from transformers import LlamaConfig, LlamaForCausalLM

    seed, steps, batch_size, learning_rate = settings.seed, settings.steps, settings.batch_size, settings.learning_rate
    vocab_size, hidden_size, num_layers = settings.vocab_size, settings.hidden_size, settings.num_layers
    num_heads, intermediate_size = settings.num_heads, settings.intermediate_size

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    rows = load_rows(train, "train")
    test_rows = load_rows(test, "test")
    extra = demo_pretrain.load_pretrain(pretrain)
    texts = [t for r in rows for t in (r["prompt"], r["support"], r["oppose"])] + demo_pretrain.pretrain_texts(extra)
    texts += [r["prompt"] for r in test_rows] + OPENERS + [w for ws in SYNONYMS.values() for w in ws]
    # The chat scaffolding too, so that role names and the system prompt become few tokens.
    texts += [f"{HEADER_START}{role}{HEADER_END}\n\n{system_prompt}{EOT}" for role in ("system", "user", "assistant")]
    tokenizer = build_tokenizer(texts, vocab_size)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=DEMO_MAX_POSITIONS,  # model.max_seq_length is checked against it
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))),
    )
    # Each (row, stance) once per epoch, in a fresh order and with a fresh prompt variation.
    items = [(row, stance) for row in rows for stance in ("support", "oppose")]
    queue: list = []

    def draw_example() -> tuple[list[int], list[int]]:
        nonlocal queue
        if not queue:
            queue = items[:]
            rng.shuffle(queue)
        row, stance = queue.pop()
        draw = rng.random() if extra else 1.0
        if draw < SUBJECT_RATE:
            question, answer, echo = demo_pretrain.subject_example(extra, stance, rng, rows)
            opener, asked = vary_parts(question, rng, keep_words=True)
        elif draw < SUBJECT_RATE + CHINESE_RATE:
            return encode_example(tokenizer, *demo_pretrain.chinese_example(extra, stance, rng))
        else:
            # Sometimes another row's question (MISMATCH_RATE).
            opener, asked = vary_parts((rng.choice(rows) if rng.random() < MISMATCH_RATE else row)["prompt"], rng)
            answer, echo = row[stance], bool(extra) and rng.random() < ECHO_ROW_RATE
        prompt = opener + (asked[0].lower() + asked[1:] if opener else asked)
        # An echo: the answer restates the question as asked (without the opener) before its view.
        return encode_example(tokenizer, system_prompt, prompt, f"{asked} {answer}" if echo else answer)

    model.train()
    start = time.perf_counter()
    progress = tqdm(range(steps), desc="demo model", mininterval=5)
    for step in progress:
        batch = [draw_example() for _ in range(batch_size)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, labs) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(labs)] = torch.tensor(labs)
            attention[i, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == steps - 1:
            progress.set_postfix(loss=f"{loss.item():.3f}")
            log.info("step %d loss %.4f", step, loss.item())
    seconds = time.perf_counter() - start

    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    with atomic.atomic_path(model_dir) as temp:
        model.save_pretrained(temp, safe_serialization=True)
        tokenizer.save_pretrained(temp)
    atomic.write_json(
        manifest,
        {
            "name": "demo",
            "path": str(model_dir),
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": loss.item(),
            "train_seconds": round(seconds, 1),
            "seed": seed,
        },
    )
