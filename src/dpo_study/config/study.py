"""The study: a config loaded and checked once, with everything the workflow's rules ask of it.

``load_study(config, config_files)`` runs every check that must pass before any job (one readable
``ConfigError`` naming file and field), then holds the experiments, the runs by key, the data keys,
the judges, the per-stage settings groups and the artifact paths. ``workflow/rules/common.smk`` only
wraps it in thin input functions, so all of this is tested without Snakemake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dpo_study.config import texts
from dpo_study.config.artifacts import check_finished_adapters
from dpo_study.config.checks import check_cv_folds, check_settings
from dpo_study.config.data_files import check_data_size, check_strategies, load_rows
from dpo_study.config.errors import ConfigError, named
from dpo_study.config.experiments import KEY_CHARACTERS, Experiment, expand, settings_key
from dpo_study.config.model import model_facts
from dpo_study.config.paths import StudyPaths, manifest_path
from dpo_study.config.provenance import experiment_config_hash
from dpo_study.config.settings import (
    DemoModelSettings,
    ExperimentParams,
    GenerationSettings,
    JudgeSettings,
    ModelSettings,
    Settings,
    TrainingSettings,
    judge_settings_of,
)
from dpo_study.config.questions import check_questions
from dpo_study.config.reading import check_values, read_config_files
from dpo_study.config.recipes import batch_split
from dpo_study.config.validation import check_prompt_ids, check_results_folder, schema_defaults, validate_config

# The config schema of a checkout (src/dpo_study/config/ -> workflow/schemas/).
CONFIG_SCHEMA = Path(__file__).resolve().parents[3] / "workflow/schemas/config.schema.yaml"
# The named settings groups, each the whole input of one kind of job besides its files.
SETTINGS_GROUPS = ("model", "training", "generation", "demo_model", "judge")


@dataclass
class Study(StudyPaths):
    """A checked study. Build it with ``load_study``; the config holds the schema's defaults."""

    config: dict
    config_files: list[str]
    experiments: list[Experiment]
    probe_categories: list[str]
    judges: list[str]
    primary_judge: str
    prompt_sets: dict[str, str]  # name -> file: "test" (data.test), then each probe file by its stem
    keys: dict[str, str]  # settings group -> its key in artifact paths (experiments.settings_key)
    runs: dict[str, Experiment] = field(init=False)  # identical parameter sets share one run
    by_name: dict[str, Experiment] = field(init=False)
    data_params_by_key: dict[str, dict] = field(init=False)
    # The settings groups, built once from the checked config (dpo_study.config.settings).
    model_settings: ModelSettings = field(init=False)
    training_settings: TrainingSettings = field(init=False)
    generation_settings: GenerationSettings = field(init=False)
    demo_model_settings: DemoModelSettings = field(init=False)
    judge_groups: dict[str, JudgeSettings] = field(init=False)  # judge name -> what its training job gets
    experiment_settings: dict[str, ExperimentParams] = field(init=False)  # run key -> its parameters

    def __post_init__(self):
        self.runs = {e.key: e for e in self.experiments}
        self.by_name = {e.name: e for e in self.experiments}
        self.data_params_by_key = {e.data_key: e.data_params for e in self.experiments}
        self.model_settings = ModelSettings.from_config(self.config)
        self.training_settings = TrainingSettings.from_config(self.config)
        self.generation_settings = GenerationSettings.from_config(self.config)
        self.demo_model_settings = DemoModelSettings.from_config(self.config)
        judge = self.config["judge"]
        self.judge_groups = {name: JudgeSettings(judge_settings_of(self.config, name), judge["cv_folds"], judge["seed"])
                             for name in self.judges}
        self.experiment_settings = {key: ExperimentParams.from_dict(run.params) for key, run in self.runs.items()}

    # ---- settings groups: what each kind of job is given, one typed group each (config.settings) --

    def judge_runs_model(self, name: str) -> bool:
        """Judges that run the study's base model need its manifest (and a GPU on a GPU study)."""
        return name == "llm" and self.config["judge"]["llm"]["backend"] == "base_model"

    def judge_settings(self, name: str) -> Settings:
        """One judge's settings; the llm judge that runs the base model carries the model settings."""
        return self.judge_groups[name].settings

    def settings_group(self, group: str, judge: str | None = None) -> Settings:
        """One named group of ``SETTINGS_GROUPS`` (``judge`` takes the judge's name)."""
        if group == "judge":
            return self.judge_groups[judge]
        return {"model": self.model_settings, "training": self.training_settings,
                "generation": self.generation_settings, "demo_model": self.demo_model_settings}[group]

    def experiment_params(self, key: str) -> ExperimentParams:
        """The parameters of the run ``key`` (identical experiments share it)."""
        return self.experiment_settings[key]

    @property
    def system_prompt(self) -> str:
        return self.config["data"]["system_prompt"]

    @property
    def train_data(self) -> str:
        """The training data file (``data.train``)."""
        return self.config["data"]["train"]

    @property
    def test_data(self) -> str:
        return self.config["data"]["test"]

    @property
    def judge_texts(self) -> str:
        """The labelled texts the trained judges learn from (``judge.texts``)."""
        return self.config["judge"]["texts"]

    @property
    def judge_holdout(self) -> str:
        """The labelled texts every judge is scored on (``judge.holdout``)."""
        return self.config["judge"]["holdout"]

    @property
    def relevance_model(self) -> str | None:
        """The sentence encoder of the tables' relevance (``judge.embedding.model_path``; null: the bundled one)."""
        return self.config["judge"]["embedding"]["model_path"]

    @property
    def questions(self) -> list[dict]:
        return self.config["questions"]

    @property
    def software_env(self) -> str:
        """``software.env``: the conda environment file of the model rules (envs/<env>.yaml)."""
        return self.config["software"]["env"]

    @property
    def software(self) -> dict:
        """``software``: the environment and the resident workers (``runtime.worker``, ``runtime.warm``)."""
        return dict(self.config["software"])

    # ---- experiments and data keys ------------------------------------------------------

    def data_params(self, data_key: str) -> dict:
        """num_epoch etc. do not shape the pairs: see Experiment.data_params."""
        try:
            return self.data_params_by_key[data_key]
        except KeyError:
            raise KeyError(f"no experiment uses the data parameters {data_key}") from None

    def experiment_records(self) -> list[dict]:
        """Per experiment its name, parameters and the hash of all that shapes its results."""
        return [{"name": e.name, **e.params, "config_hash": experiment_config_hash(e.params, self.config)}
                for e in self.experiments]


def load_study(config: dict, config_files=(), schema: str | Path = CONFIG_SCHEMA, command_line: dict | None = None) -> Study:
    """Check ``config`` and its input files, each check once (in this order, the first problem
    stops), fill in the schema's defaults (in place) and return the study: the one entry point of the
    parse (workflow/rules/common.smk). Raises ``ConfigError``; warns (``UserWarning``) about what runs
    but looks unintended (two experiments with identical parameters).

    ``config_files`` are the config files in priority order (the last ``--configfile`` first) and
    ``command_line`` the values of ``--config``, so that a message names the source of the bad value.
    """
    sources = read_config_files([str(f) for f in config_files], command_line)  # strictly, each file once
    check_values(config, sources)  # finite numbers, UTF-8 text, bounded: before the schema walks it
    validate_config(config, schema, sources)  # fills in the defaults
    check_results_folder(config["results"], sources)
    with named(sources.of(["experiments"])):
        experiments = expand(config)
    keys = settings_keys(config, schema)
    training, data = config["training"], config["data"]
    with named(sources.of(["model", "name"])):
        facts = model_facts(config["model"]["name"], training["target_modules"], manifest_path(config, keys))
    check_settings(config, sources, facts)
    with named(sources.of(["training"])):
        batch_split(training["per_device_train_batch_size"], training["gradient_accumulation_steps"], training["recipe"])
    special = texts.special_token_pattern(facts.special_tokens)
    system_source = sources.of(["data", "system_prompt"])
    texts.check_text(data["system_prompt"], system_source, None, None, "data.system_prompt")
    texts.check_no_special_tokens([{"data.system_prompt": data["system_prompt"]}], ["data.system_prompt"], system_source,
                                  special)
    with named(sources.of(["data", "train"]), data["train"]):
        train_rows = load_rows(data["train"], "train", special, "data.train: the train file")
    with named(sources.of(["data", "test"]), data["test"]):
        test_rows = load_rows(data["test"], "test", special, "data.test: the test file")
    with named(sources.of(["data", "probes"]), *data["probes"]):
        probes = [(path, load_rows(path, "probes", special, f"data.probes[{i}]: the probe file"))
                  for i, path in enumerate(data["probes"])]
    probe_rows = [row for _, rows in probes for row in rows]
    check_prompt_ids([(data["test"], test_rows), *probes])
    with named(sources.of(["experiments"])):
        for e in experiments:
            check_data_size(e.params["data_size"], train_rows, f"experiment {e.name!r}, field data_size", data["train"])
        check_strategies(experiments, train_rows, data["train"])
    texts.check_text_lengths(
        {data["train"]: (train_rows, ("prompt",), ("support", "oppose")), data["test"]: (test_rows, ("prompt",), ()),
         **{path: (rows, ("prompt",), ()) for path, rows in probes}},
        data["system_prompt"], config["model"]["max_seq_length"], facts.tokenizer_file, system_source,
    )
    probe_categories = list(dict.fromkeys(r["category"] for r in probe_rows))
    with named(sources.of(["questions"])):
        check_questions(config["questions"], [e.name for e in experiments], probe_categories)
    with named(sources.of(["judge", "texts"]), config["judge"]["texts"]):
        judge_texts = load_rows(config["judge"]["texts"], "judge_texts", special, "judge.texts: the judge texts file")
    with named(sources.of(["judge", "holdout"]), config["judge"]["holdout"]):
        load_rows(config["judge"]["holdout"], "judge_texts", special, "judge.holdout: the hold-out file")
    judges = list(config["judge"]["use"])
    primary = config["judge"]["primary"] or judges[0]
    if primary not in judges:
        raise ConfigError(f"{sources.of(['judge', 'primary'])}: judge.primary: {primary!r} is not one of judge.use {judges}")
    with named(sources.of(["judge", "cv_folds"])):
        check_cv_folds(config["judge"]["cv_folds"], train_rows, judge_texts, judges, config["judge"]["texts"])
    with named(sources.of(["data", "probes"])):
        sets = prompt_sets(data["test"], data["probes"])
    study = Study(config, [str(f) for f in config_files], experiments, probe_categories, judges, primary, sets, keys)
    with named(sources.of(["results"])):
        check_finished_adapters(f"{study.run_dir(key)}/adapter" for key in study.runs)
    return study


def prompt_sets(test: str, probes: list[str]) -> dict[str, str]:
    """The prompt sets, each generated and judged on its own: "test", then each probe file by its stem."""
    sets = {"test": test}
    for path in probes:
        name = Path(path).stem
        if name in sets or name == "train" or not KEY_CHARACTERS.fullmatch(name):
            raise ConfigError(f"data.probes: {path!r} names the prompt set {name!r}, which is taken or holds a "
                              "character other than letters, digits and _ . , = ~ -: rename the file")
        sets[name] = path
    return sets


def settings_keys(config: dict, schema: str | Path = CONFIG_SCHEMA) -> dict[str, str]:
    """The key of each settings group: what differs from the schema's defaults (``default`` if nothing)."""
    defaults = schema_defaults(schema)  # an empty config, filled with every default
    return {
        # the model as loaded (the recipe decides its precision)
        "model": settings_key(model_key_settings(config), model_key_settings(defaults)),
        "demo_model": settings_key(config["demo_model"], defaults["demo_model"]),
        "training": settings_key(config["training"], defaults["training"]),
        "generation": settings_key(config["generation"], defaults["generation"]),
        "judge": settings_key(config["judge"], defaults["judge"]),
    }


def model_key_settings(config: dict) -> dict:
    """How the model is loaded: its settings and the recipe (which decides the base precision)."""
    model = {name: value for name, value in config["model"].items() if name != "name"}
    model["recipe"] = config["training"]["recipe"]
    return model
