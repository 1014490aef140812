import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def train_rows():
    return [
        {"id": i, "prompt": f"question {i}?", "support": f"support answer {i}.", "oppose": f"oppose answer {i}."}
        for i in range(1, 11)
    ]


@pytest.fixture
def write_json(tmp_path):
    def write(name, content):
        path = tmp_path / name
        path.write_text(json.dumps(content, ensure_ascii=False))
        return path

    return write


# The demo study that the slow tests share (tests/test_pipeline.py, tests/test_report_pipeline.py):
# one snakemake run on the demo model. ratio_1 has a second seed, so the report shows a seed group.
DEMO_EXPERIMENTS = [
    {"name": "ratio_0", "support_ratio": 0},
    {"name": "ratio_1", "support_ratio": 1},
    {"name": "ratio_1_seed7", "support_ratio": 1, "seed": 7},
]
DEMO_QUESTIONS = [
    {"name": "Q1", "title": "support_ratio 0 vs 1", "a": "ratio_0", "b": "ratio_1"},
    {"name": "Q4", "title": "probe categories", "a": "ratio_0", "b": "ratio_1", "categories": "all"},
]


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """(working directory, config file) of the finished demo study."""
    from snakemake_helpers import snakemake, workdir_with_config

    workdir = tmp_path_factory.mktemp("study")
    config = workdir_with_config(workdir, {"experiments": DEMO_EXPERIMENTS, "questions": DEMO_QUESTIONS})
    snakemake(workdir, config)
    return workdir, config


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The manifest of a demo-architecture model small enough to build in seconds (not fluent)."""
    from dpo_study.config.data_files import DEFAULT_SYSTEM_PROMPT
    from dpo_study.config.settings import DemoModelSettings
    from dpo_study.stages.demo_model import build_demo_model

    folder = tmp_path_factory.mktemp("tiny_model")
    build_demo_model(
        str(REPO / "data/train.json"), str(REPO / "data/test.json"), str(folder / "model"), str(folder / "model.json"),
        DemoModelSettings(seed=1, steps=5, batch_size=8, learning_rate=0.003, vocab_size=400, hidden_size=32,
                          num_layers=1, num_heads=2, intermediate_size=64),
        system_prompt=DEFAULT_SYSTEM_PROMPT,
    )
    return folder / "model.json"


def overlay(base: dict, extra: dict) -> dict:
    """``extra`` over ``base`` key by key, as `--configfile` overlays a file (a list replaces the list)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def demo_config(**overrides) -> dict:
    """config/config.yaml with config/demo.yaml over it, then ``overrides`` (whole top-level keys)."""
    import yaml

    base, demo = (yaml.safe_load((REPO / f"config/{name}.yaml").read_text()) for name in ("config", "demo"))
    return {**overlay(base, demo), **overrides}


def load_demo_study(config: dict | None = None):
    """load_study of ``config`` (by default the demo's) from the checkout, where its data paths are."""
    import os

    from dpo_study.config.study import load_study

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return load_study(config if config is not None else demo_config(),
                          [REPO / "config/demo.yaml", REPO / "config/config.yaml"])
    finally:
        os.chdir(cwd)


def default_config() -> dict:
    """An empty config with every schema default filled in (what a study's config holds unless set)."""
    from dpo_study.config.validation import validate_config

    config: dict = {}
    validate_config(config, REPO / "workflow/schemas/config.schema.yaml")
    return config


def default_settings(group, **overrides):
    """A settings group (``dpo_study.config.settings``) of the schema's defaults, with ``overrides``."""
    return group.from_config(default_config()).replace(**overrides)
