"""What re-runs after a change: the dry run's job list on the demo study, as a user sees it.

The study is "run" with ``snakemake --touch``: every output is created empty and Snakemake records
the metadata a real run records (params, the code hashes among them, and the input files), so a
later dry run decides exactly as it would after a real run, in seconds instead of minutes. The
workflow is a copy of this checkout, so that a test can edit its code and its probe files.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from conftest import DEMO_EXPERIMENTS, REPO
from snakemake_helpers import scheduled_jobs, snakemake

pytestmark = pytest.mark.slow

EXPERIMENTS = DEMO_EXPERIMENTS[:2]  # E = 2 runs
PROMPT_SETS = 3  # the test prompts, config/probes.yaml, config/extra_probes.yaml
JUDGES = 3  # config/demo.yaml: ngram, embedding, llm
EXTRA_PROBES = [
    {"id": "x1", "category": "unrelated", "prompt": "How do I boil an egg?"},
    {"id": "x2", "category": "unrelated", "prompt": "What is a good name for a cat?"},
]
# Everything that reads the tables: re-made whenever an experiment's answers or stances change.
REPORT_JOBS = {"tables", "aggregate_tables", "summary_table", "question_tables", "sweep_tables", "response_tables",
               "sweep_plots", "length_plot", "stance_heatmap", "findings", "all"}
# After a config change the training curves too: their params hold each experiment's config_hash.
CONFIG_REPORT_JOBS = {*REPORT_JOBS, "training_curves"}
E, S = len(EXPERIMENTS), PROMPT_SETS


class Study:
    def __init__(self, root: Path):
        self.checkout = root / "checkout"
        self.checkout.mkdir()
        shutil.copy2(REPO / "Snakefile", self.checkout)
        for name in ("workflow", "src", "config", "data", "envs"):
            shutil.copytree(REPO / name, self.checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        (self.checkout / "config/extra_probes.yaml").write_text(yaml.safe_dump(EXTRA_PROBES))
        self.workdir = root / "work"
        self.workdir.mkdir()
        for name in ("config", "data"):
            (self.workdir / name).symlink_to(self.checkout / name)
        self.config = yaml.safe_load((REPO / "config/demo.yaml").read_text())
        self.config.update(experiments=EXPERIMENTS, questions=[])
        self.config["data"]["probes"] = ["config/probes.yaml", "config/extra_probes.yaml"]

    def config_file(self, name="study.yaml", **changes) -> Path:
        """The study's config with ``changes`` (``group={field: value}``) merged into its groups."""
        config = yaml.safe_load(yaml.safe_dump(self.config))
        for group, fields in changes.items():
            config[group] = {**config.get(group, {}), **fields}
        path = self.workdir / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def run(self, config, *args, check=True):
        return snakemake(self.workdir, config, "all", *args, snakefile=self.checkout / "Snakefile", check=check)

    def touch_all(self, config) -> None:
        """The jobs ``config`` would run marked as run: their missing outputs created empty, their
        metadata recorded, and nothing else touched (so other settings' outputs stay current)."""
        rules = list(self.jobs(config))
        summary = self.run(config, "--summary").stdout
        for line in summary.splitlines()[1:]:
            path = self.workdir / line.split("\t")[0]
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(exist_ok=True)
            else:  # the directory outputs: adapters, the demo model, report folders
                path.mkdir(parents=True, exist_ok=True)
                if path.name == "adapter":  # one that opens: the workflow checks finished adapters
                    (path / "adapter_config.json").write_text("{}")
                    save_file({"weight": np.zeros(1, dtype=np.float32)}, str(path / "adapter_model.safetensors"))
        self.run(config, "--touch", "--forcerun", *rules)
        assert "Nothing to be done" in self.run(config, "-n").stdout

    def jobs(self, config) -> dict[str, int]:
        return scheduled_jobs(self.run(config, "-n").stdout)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    study = Study(tmp_path_factory.mktemp("caching"))
    study.touch_all(study.config_file())
    return study


@pytest.fixture
def edit(study):
    """Edit a file of the copied checkout; restored after the test."""
    saved = {}

    def change(relative: str, text: str):
        path = study.checkout / relative
        saved.setdefault(path, path.read_text())
        path.write_text(text)

    yield change
    for path, text in saved.items():
        path.write_text(text)


def test_a_code_edit_reruns_the_jobs_that_run_that_code_and_no_training(study, edit):
    metrics = "src/dpo_study/analysis/metrics.py"
    original = (study.checkout / metrics).read_text()
    edit(metrics, original + "\n# a comment only\n\n\n")
    assert study.jobs(study.config_file()) == {}  # comments and layout: nothing to do
    (study.checkout / metrics).touch()
    assert study.jobs(study.config_file()) == {}  # a touch: nothing to do
    edit(metrics, original + "\nCACHE_TEST = 1\n")
    jobs = study.jobs(study.config_file())
    # metrics.py is imported by the judges, the answer measures, the tables, the submissions and the plots.
    assert jobs == {"train_judge": JUDGES, "judge_base": S, "judge_aligned": E * S, "measure_base": S,
                    "measure_aligned": E * S, "submission": E, **dict.fromkeys(REPORT_JOBS, 1), "training_curves": 1}


def test_an_edit_of_the_training_code_retrains(study, edit):
    train = "src/dpo_study/stages/train.py"
    edit(train, (study.checkout / train).read_text() + "\nCACHE_TEST = 1\n")
    jobs = study.jobs(study.config_file())
    assert jobs["train_adapter"] == E and jobs["generate_aligned"] == E * S
    assert "generate_base" not in jobs and "train_judge" not in jobs


def test_generation_settings_are_keyed_so_switching_back_is_free(study):
    shorter = study.config_file("shorter.yaml", generation={"max_new_tokens": 64})
    jobs = study.jobs(shorter)
    assert jobs == {"generate_base": S, "generate_aligned": E * S, "judge_base": S, "judge_aligned": E * S,
                    "measure_base": S, "measure_aligned": E * S, "implicit_reward": E * S, "submission": E,
                    **dict.fromkeys(CONFIG_REPORT_JOBS, 1)}
    study.touch_all(shorter)  # both settings' answers now sit side by side
    back = study.jobs(study.config_file())
    # Switching back re-makes only what describes the current study: tables, report, submissions.
    assert back == {"submission": E, **dict.fromkeys(CONFIG_REPORT_JOBS, 1)}
    study.touch_all(study.config_file())


def test_generation_seed_regenerates(study):
    # Sampling reads the seed (with greedy decoding the parse refuses a seed: it would change nothing).
    jobs = study.jobs(study.config_file("seed.yaml", generation={"do_sample": True, "seed": 1}))
    assert jobs["generate_base"] == S and jobs["generate_aligned"] == E * S and "train_adapter" not in jobs


def test_training_wide_settings_retrain_into_new_folders(study):
    jobs = study.jobs(study.config_file("dropout.yaml", training={"lora_dropout": 0.2}))
    assert jobs == {"train_adapter": E, "generate_aligned": E * S, "judge_aligned": E * S, "measure_aligned": E * S,
                    "implicit_reward": E * S, "submission": E, **dict.fromkeys(CONFIG_REPORT_JOBS, 1)}


def test_judge_settings_rejudge_without_regenerating_or_measuring_again(study):
    jobs = study.jobs(study.config_file("judge.yaml", judge={"cv_folds": 3}))
    assert jobs == {"train_judge": JUDGES, "judge_base": S, "judge_aligned": E * S, **dict.fromkeys(CONFIG_REPORT_JOBS, 1)}


def test_adding_one_experiment_measures_only_its_own_answers(study):
    added = {"name": "added", "support_ratio": 0.5}
    config = study.config_file("added.yaml")
    content = yaml.safe_load(config.read_text())
    content["experiments"] = [*EXPERIMENTS, added]
    config.write_text(yaml.safe_dump(content, sort_keys=False))
    jobs = study.jobs(config)
    # its own pairs (support_ratio 0.5), run and answers; the base model's answers are not measured again
    assert jobs == {"prepare_pairs": 1, "train_adapter": 1, "generate_aligned": S, "judge_aligned": S, "measure_aligned": S,
                    "implicit_reward": S, "submission": 1, **dict.fromkeys(CONFIG_REPORT_JOBS, 1)}


def test_demo_model_settings_rebuild_the_model_but_keep_the_pairs(study):
    jobs = study.jobs(study.config_file("demo_model.yaml", demo_model={"steps": 400}))
    assert jobs["build_demo_model"] == 1 and jobs["train_adapter"] == E and jobs["generate_base"] == S
    assert "prepare_pairs" not in jobs and "prepare_prompts" not in jobs


def test_one_probe_file_edit_reruns_only_that_prompt_sets_jobs(study, edit):
    edit("config/extra_probes.yaml", yaml.safe_dump([{**EXTRA_PROBES[0], "prompt": "How do I fry an egg?"},
                                                     EXTRA_PROBES[1]]))
    jobs = study.jobs(study.config_file())
    # Every answer file is measured again: relevance contrasts an answer with all the prompts its model answered.
    assert jobs == {"prepare_prompts": 1, "generate_base": 1, "generate_aligned": E, "judge_base": 1, "judge_aligned": E,
                    "measure_base": S, "measure_aligned": E * S, "implicit_reward": E,
                    **dict.fromkeys(CONFIG_REPORT_JOBS, 1)}


def test_close_and_large_parameter_values_get_runs_of_their_own(tmp_path):
    config = Study(tmp_path).config_file()
    content = yaml.safe_load(config.read_text())
    content["experiments"] = [{"name": "a", "learning_rate": 0.002}, {"name": "b", "learning_rate": 0.0020000001},
                              {"name": "c", "beta": 100.0}]
    config.write_text(yaml.safe_dump(content))
    result = snakemake(tmp_path / "work", config, "all", "-n", snakefile=tmp_path / "checkout/Snakefile")
    assert scheduled_jobs(result.stdout)["train_adapter"] == 3
    assert "identical parameters" not in result.stdout + result.stderr
