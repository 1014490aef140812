"""generation.seed decides sampled answers (and only sampled ones)."""

import json

from conftest import REPO, default_settings
from dpo_study.config.settings import GenerationSettings, ModelSettings
from dpo_study.stages.data import prompt_records
from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT
from dpo_study.stages.generate import generate_answers
from dpo_study.runtime.modeling import load_base, load_tokenizer, read_manifest

SAMPLING = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=2.0, top_p=1.0, batch_size=10,
                              decode="plain", seed=1)


def answers(model, tokenizer, records, generation):
    return [r["response"] for r in generate_answers(model, tokenizer, records, generation)]


def test_the_seed_decides_sampled_answers(tiny_model):
    manifest = read_manifest(tiny_model)
    settings = default_settings(ModelSettings, load_in_4bit=False)
    tokenizer, model = load_tokenizer(manifest, settings), load_base(manifest, settings)
    records = prompt_records(json.loads((REPO / "data/test.json").read_text()), [], DEFAULT_SYSTEM_PROMPT)
    first = answers(model, tokenizer, records, SAMPLING)
    assert answers(model, tokenizer, records, SAMPLING) == first  # the same seed, the same answers
    assert answers(model, tokenizer, records, SAMPLING.replace(seed=2)) != first
    greedy = SAMPLING.replace(do_sample=False)
    assert answers(model, tokenizer, records, greedy) == answers(model, tokenizer, records, greedy.replace(seed=2))
