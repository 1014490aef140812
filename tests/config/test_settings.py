"""Typed settings (dpo_study.config.settings): named as the schema names them, built once by the Study,
carried through a rule's params as plain values and rebuilt by the stage runner as the stage declares."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, default_config, default_settings, load_demo_study
from dpo_study.config import settings as typed
from dpo_study.runtime import runner

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]


def field_names(group) -> list[str]:
    return [f.name for f in dataclasses.fields(group)]


@pytest.mark.parametrize(("group", "section", "added"), [
    (typed.GenerationSettings, "generation", []),
    (typed.DemoModelSettings, "demo_model", []),
    (typed.TrainingSettings, "training", ["max_length"]),  # model.max_seq_length, named in settings.py
    (typed.ModelSettings, "model", ["recipe"]),  # training.recipe decides the base precision
])
def test_a_group_has_the_schema_fields_of_its_section_and_only_the_named_additions(group, section, added):
    schema = [name for name in SCHEMA[section]["properties"] if name != "name"]
    assert sorted(field_names(group)) == sorted(schema + added)


def test_judge_settings_have_the_schema_fields_and_defaults():
    judge = SCHEMA["judge"]["properties"]
    for name, group in (("embedding", typed.EmbeddingJudgeSettings), ("llm", typed.LlmJudgeSettings)):
        properties = judge[name]["properties"]
        assert [n for n in field_names(group) if n != "model_settings"] == list(properties)
        assert {k: v for k, v in group().to_dict().items() if k in properties} == \
            {n: p["default"] for n, p in properties.items()}


def test_experiment_params_are_the_schema_defaults_fields():
    assert field_names(typed.ExperimentParams) == [*SCHEMA["defaults"]["properties"], "mix_weights"]


def test_an_unknown_or_missing_field_is_an_error_not_dropped():
    values = default_settings(typed.TrainingSettings).to_dict()
    with pytest.raises(TypeError, match="unknown field.*lora_dropoutt"):
        typed.TrainingSettings.from_dict({**values, "lora_dropoutt": 0.1})
    values.pop("warmup_ratio")
    with pytest.raises(TypeError, match="warmup_ratio"):
        typed.TrainingSettings.from_dict(values)
    # A field the schema gains but settings.py lacks stops the study, rather than vanishing.
    config = default_config()
    config["training"]["new_knob"] = 1
    with pytest.raises(TypeError, match="new_knob"):
        typed.TrainingSettings.from_config(config)


def test_max_length_is_the_models_max_seq_length():
    config = default_config()
    config["model"]["max_seq_length"] = 333
    assert typed.TrainingSettings.from_config(config).max_length == 333


def test_plain_values_round_trip_and_are_frozen():
    study = load_demo_study()
    for group in (study.model_settings, study.training_settings, study.generation_settings,
                  study.demo_model_settings, *(g.settings for g in study.judge_groups.values()),
                  study.experiment_params(study.experiments[0].key)):
        plain = group.to_dict()
        assert type(group).from_dict(plain) == group
        # What Snakemake's params trigger compares: plain values, the same repr every time.
        assert repr(plain) == repr(type(group).from_dict(plain).to_dict())
        assert all(not dataclasses.is_dataclass(v) and not isinstance(v, tuple) for v in plain.values())
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(group, field_names(type(group))[0] if field_names(type(group)) else "x", None)
    assert study.experiment_params(study.experiments[0].key).to_dict() == study.experiments[0].params


def stage(training: typed.TrainingSettings, model_settings: typed.ModelSettings | None, pairs: str,
          plan=None):
    return training, model_settings, pairs, plan


def judge_stage(name: str, settings: typed.Settings | dict):
    return name, settings


def test_the_runner_rebuilds_settings_by_the_stages_annotations():
    training, model = default_settings(typed.TrainingSettings), default_settings(typed.ModelSettings)
    kwargs = {"training": training.to_dict(), "model_settings": model.to_dict(), "pairs": "p.jsonl", "threads": 2}
    arguments = runner.stage_arguments(stage, kwargs, plan="the plan")
    assert arguments == {"training": training, "model_settings": model, "pairs": "p.jsonl", "plan": "the plan"}
    assert runner.stage_arguments(stage, {**kwargs, "model_settings": None})["model_settings"] is None
    # Any group (the judges'): left as plain values for the stage to rebuild by the judge's name.
    plain = {"model_path": None, "batch_size": 8}
    assert runner.stage_arguments(judge_stage, {"name": "embedding", "settings": plain})["settings"] == plain


def test_a_judge_job_gets_its_judges_settings(tmp_path):
    """train_judge as a job runs it: the judge's settings as the rule's params carry them."""
    from dpo_study.stages.judge import make_judge

    study = load_demo_study()
    for name in study.judges:
        plain = study.judge_settings(name).to_dict()
        arguments = runner.stage_arguments(make_judge, {"name": name, "settings": plain})
        assert make_judge(**arguments).settings == study.judge_settings(name)


def test_rules_read_the_config_through_the_study():
    rules = [*(REPO / "workflow/rules").glob("*.smk"), REPO / "Snakefile"]
    assert not [str(p) for p in rules if "config[" in p.read_text()]


def test_the_settings_module_imports_no_ml_library():
    code = ("import sys; import dpo_study.config.settings; "
            "print([m for m in ('torch', 'transformers', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src")})
    assert out.stdout.strip() == "[]"
