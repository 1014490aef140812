"""The DPO implicit reward beta * (log pi(y|x) - log pi_ref(y|x)), with the adapter on vs off."""

import pandas as pd
import pytest
import torch

from conftest import default_settings
from dpo_study.config.settings import ModelSettings
from dpo_study.stages.data import write_jsonl
from dpo_study.runtime.modeling import continuation_logprobs, load_base, load_tokenizer, read_manifest, sequence_logprobs
from dpo_study.stages.reward import conversation_ids, implicit_rewards

SETTINGS = default_settings(ModelSettings)
RECORDS = [
    {"id": "51", "set": "test", "category": "test", "system": "Be brief.", "prompt": "Is AI Ghibli art ethical?",
     "response": "It is a joyful homage."},
    {"id": "p1", "set": "probe", "category": "chinese", "system": "Be brief.", "prompt": "AI吉卜力風格合乎道德嗎？",
     "response": "我反對，這是剝削畫師。"},
]


def manual_logprob(model, ids, start):
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    return sum(logits[i - 1, ids[i]].item() for i in range(start, len(ids)))


@pytest.fixture(scope="module")
def loaded(tiny_model):
    manifest = read_manifest(tiny_model)
    return load_tokenizer(manifest, SETTINGS), load_base(manifest, SETTINGS).eval()


def test_answer_tokens_are_the_assistant_turn_with_its_end_token(loaded):
    tokenizer, _ = loaded
    ids, start = conversation_ids(tokenizer, RECORDS[0], RECORDS[0]["response"])
    assert tokenizer.decode(ids[start:]) == "It is a joyful homage.<|eot_id|>"
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": RECORDS[0]["prompt"]}],
                                           tokenize=False, add_generation_prompt=True)
    assert ids[:start] == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_batched_logprobs_equal_one_by_one(loaded):
    tokenizer, model = loaded
    encoded = [conversation_ids(tokenizer, r, r["response"]) for r in RECORDS]
    batched = sequence_logprobs(model, [ids for ids, _ in encoded], [s for _, s in encoded], batch_size=2)
    assert batched == pytest.approx([manual_logprob(model, ids, s) for ids, s in encoded], abs=1e-4)


def test_continuations_scored_on_one_pass_of_their_prefix_equal_each_sequence_scored_whole(loaded):
    """The llm judge's label words: each prefix once, its cache repeated for every continuation (of
    one and of several tokens), prefixes of different lengths left-padded in one batch."""
    tokenizer, model = loaded
    prefixes = [conversation_ids(tokenizer, r, r["response"])[0] for r in RECORDS] * 2
    prefixes[3] = prefixes[3][:-5]
    words = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in ("support", "Oppose", "neutral", "x")]
    assert max(map(len, words)) > 1 and min(map(len, words)) == 1
    scored = continuation_logprobs(model, prefixes, words, batch_size=3)
    whole = sequence_logprobs(model, [p + w for p in prefixes for w in words], [len(p) for p in prefixes for _ in words])
    assert [score for row in scored for score in row] == pytest.approx(whole, abs=1e-4)
    single = continuation_logprobs(model, prefixes[:2], [w for w in words if len(w) == 1])  # no second pass
    assert [score for row in single for score in row] == pytest.approx(
        [s for row in scored[:2] for s, w in zip(row, words) if len(w) == 1], abs=1e-4)


def adapter_folder(tiny_model, path, zero: bool):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_base(read_manifest(tiny_model), SETTINGS),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    if not zero:  # PEFT starts lora_B at zero (adapter = no change); give it weights
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(weight, std=0.5)
    model.save_pretrained(path)
    return str(path)


def run_stage(tiny_model, tmp_path, adapter, beta):
    aligned, base, rewards = tmp_path / "aligned.jsonl", tmp_path / "base.jsonl", tmp_path / "rewards.csv"
    write_jsonl(RECORDS, aligned)
    write_jsonl([{**r, "response": "It is theft."} for r in RECORDS], base)
    implicit_rewards(tiny_model, adapter, str(aligned), str(base), str(rewards), beta, SETTINGS, batch_size=2)
    return pd.read_csv(rewards, dtype={"id": str})


def test_an_untrained_adapter_earns_no_reward(tiny_model, tmp_path):
    table = run_stage(tiny_model, tmp_path, adapter_folder(tiny_model, tmp_path / "adapter", zero=True), beta=0.1)
    assert list(table["id"]) == ["51", "p1"]
    assert table["aligned_implicit_reward"].abs().max() < 1e-5
    assert table["original_implicit_reward"].abs().max() < 1e-5


def test_reward_is_beta_times_the_policy_reference_gap(tiny_model, tmp_path, loaded):
    from peft import PeftModel

    tokenizer, reference = loaded
    adapter = adapter_folder(tiny_model, tmp_path / "adapter", zero=False)
    table = run_stage(tiny_model, tmp_path, adapter, beta=0.5)
    policy = PeftModel.from_pretrained(load_base(read_manifest(tiny_model), SETTINGS), adapter).eval()
    for row, record in zip(table.itertuples(), RECORDS):
        ids, start = conversation_ids(tokenizer, record, record["response"])
        expected = 0.5 * (manual_logprob(policy, ids, start) - manual_logprob(reference, ids, start))
        assert abs(expected) > 1e-3  # the adapter does change the model
        assert row.aligned_implicit_reward == pytest.approx(expected, abs=1e-4)
        assert row.aligned_logp_reference == pytest.approx(manual_logprob(reference, ids, start), abs=1e-4)


def test_perplexity_is_the_base_models_per_token_likelihood(tiny_model, tmp_path, loaded):
    """Each answer's perplexity is exp(−log P_base(answer | prompt) / its tokens), the adapter off."""
    import math

    tokenizer, reference = loaded
    table = run_stage(tiny_model, tmp_path, adapter_folder(tiny_model, tmp_path / "adapter", zero=False), beta=0.1)
    for side, answer in (("aligned", None), ("original", "It is theft.")):
        for row, record in zip(table.itertuples(), RECORDS):
            ids, start = conversation_ids(tokenizer, record, answer or record["response"])
            expected = math.exp(-manual_logprob(reference, ids, start) / (len(ids) - start))
            assert getattr(row, f"{side}_perplexity") == pytest.approx(expected, rel=1e-3)
    # The two sides are scored by the same (base) model: a different answer, a different perplexity.
    assert (table["aligned_perplexity"] != table["original_perplexity"]).all()
