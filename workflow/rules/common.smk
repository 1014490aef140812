import os
import sys
import warnings
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("9.0")

# The stage code lives in src/; put it first on the path of every job, in any environment.
# (Set here, not read from the user: no envvars: directive applies.)
SRC = str(Path(workflow.basedir, "src").resolve())
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)
sys.path.insert(0, SRC)

from dpo_study.experiments import ConfigError, expand
from dpo_study.data import check_strategies, load_probes, load_rows
from dpo_study.strategies import needs_base_responses
from dpo_study.modeling import check_model_name, model_slug
from dpo_study.report import check_questions
from dpo_study.provenance import experiment_config_hash
from dpo_study.validation import (
    check_prompt_ids,
    check_results_folder,
    validate_config,
)
from dpo_study.backends import batch_split
from dpo_study.generate import check_generation
from dpo_study.input_checks import check_config_files, check_study


def checked(check, *args):
    """Run an input check at parse time; a ConfigError stops the run before any job."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = check(*args)
        except ConfigError as error:
            raise WorkflowError(f"Invalid study input:\n{error}") from None
    for warning in caught:
        logger.warning(f"Warning: {warning.message}")
    return result


# The --configfile files first (the last one wins), so that errors name the file to fix.
CONFIG_FILES = [*reversed(workflow.overwrite_configfiles), *workflow.configfiles]
CONFIG_SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
checked(check_config_files, CONFIG_FILES)  # strictly, before the schema walks them
try:
    validate(config, CONFIG_SCHEMA)  # fills in the schema's defaults
except WorkflowError:
    # The same schema again, for one readable line per problem naming the file that set it.
    checked(validate_config, config, CONFIG_SCHEMA, CONFIG_FILES)
    raise
checked(check_results_folder, config["results"], CONFIG_FILES)
EXPERIMENTS = checked(expand, config)
RUNS = {e.key: e for e in EXPERIMENTS}  # identical parameter sets share one run
BY_NAME = {e.name: e for e in EXPERIMENTS}
TRAIN_ROWS = checked(load_rows, config["data"]["train"], "train")
TEST_ROWS = checked(load_rows, config["data"]["test"], "test")
PROBE_ROWS = checked(
    load_probes, config["data"]["probes"]
)  # an id once across probe files
checked(
    check_prompt_ids,
    {
        config["data"]["test"]: TEST_ROWS,
        **{path: load_rows(path, "probes") for path in config["data"]["probes"]},
    },
)
for e in EXPERIMENTS:
    if e.params["data_size"] > len(TRAIN_ROWS):
        raise WorkflowError(
            f"Invalid study input: experiment {e.name!r}, field data_size: {e.params['data_size']} "
            f"is larger than the {len(TRAIN_ROWS)} rows of {config['data']['train']}"
        )
checked(check_strategies, EXPERIMENTS, TRAIN_ROWS, config["data"]["train"])
checked(check_model_name, config["model"]["name"], config["training"]["target_modules"])
PROBE_CATEGORIES = list(dict.fromkeys(r["category"] for r in PROBE_ROWS))
checked(check_questions, config["questions"], BY_NAME, PROBE_CATEGORIES)
JUDGE_TEXTS = checked(load_rows, config["judge"]["texts"], "judge_texts")
checked(load_rows, config["judge"]["holdout"], "judge_texts")
JUDGES = config["judge"]["use"]
PRIMARY_JUDGE = config["judge"]["primary"] or JUDGES[0]
if PRIMARY_JUDGE not in JUDGES:
    raise WorkflowError(
        f"Invalid study input: judge.primary: {PRIMARY_JUDGE!r} is not one of judge.use {JUDGES}"
    )
checked(batch_split, config["training"], config["training"]["recipe"])
checked(check_generation, config["generation"])

RESULTS = config["results"]
MODEL = config["model"]["name"]
MODEL_SLUG = model_slug(MODEL)
MODEL_MANIFEST = f"{RESULTS}/models/{MODEL_SLUG}.json"
MODEL_RESULTS = f"{RESULTS}/{MODEL_SLUG}"
ENV = f"../../envs/{config['software']['env']}.yaml"
checked(
    check_study,
    config,
    CONFIG_FILES,
    TRAIN_ROWS,
    TEST_ROWS,
    PROBE_ROWS,
    JUDGE_TEXTS,
    MODEL_MANIFEST,
)


wildcard_constraints:
    key="|".join(RUNS) or "none",
    data_key="[^/]+",
    experiment="|".join(BY_NAME),
    judge="|".join(JUDGES),


# ---- input functions and params -------------------------------------------------------


def model_settings():
    """What every model-loading job needs; the recipe and max length decide the base precision."""
    return {
        "trust_remote_code": config["model"]["trust_remote_code"],
        "load_in_4bit": config["model"]["load_in_4bit"],
        "max_seq_length": config["model"]["max_seq_length"],
        "recipe": config["training"]["recipe"],
    }


def training_settings():
    return {**config["training"], "max_length": config["model"]["max_seq_length"]}


def experiment_params(wildcards):
    return RUNS[wildcards.key].params


def pairs_file(wildcards):
    """Pairs built from the base model's own answers belong to that model; the others are shared."""
    e = RUNS[wildcards.key]
    folder = (
        MODEL_RESULTS
        if needs_base_responses(e.params["strategy"], e.params.get("mix_weights"))
        else RESULTS
    )
    return f"{folder}/pairs/{e.data_key}.jsonl"


def data_params(wildcards):
    """num_epoch etc. do not shape the pairs: see Experiment.data_params."""
    for e in EXPERIMENTS:
        if e.data_key == wildcards.data_key:
            return e.data_params
    raise WorkflowError(f"no experiment uses the data parameters {wildcards.data_key}")


def pairs_inputs(wildcards):
    """The base model's answers to the training prompts only for strategies that reject them."""
    data = data_params(wildcards)
    inputs = {"train": config["data"]["train"]}
    if needs_base_responses(data["strategy"], data.get("mix_weights")):
        inputs["base_responses"] = f"{MODEL_RESULTS}/base/train_responses.jsonl"
    return inputs


def run_dir(key):
    return f"{MODEL_RESULTS}/runs/{key}"


def checkpoint_dir(wildcards):
    """Not an output on purpose: it must survive a failed or killed job, for the rerun to resume."""
    return f"{run_dir(wildcards.key)}/checkpoints"


def named_experiment_params(wildcards):
    return BY_NAME[wildcards.experiment].params


def aligned_responses(wildcards):
    return f"{run_dir(BY_NAME[wildcards.experiment].key)}/responses.jsonl"


def experiment_records():
    return [
        {
            "name": e.name,
            **e.params,
            "config_hash": experiment_config_hash(e.params, config),
        }
        for e in EXPERIMENTS
    ]


def all_summaries():
    return [f"{run_dir(e.key)}/train_summary.json" for e in EXPERIMENTS]


def all_stances():
    return [f"{run_dir(e.key)}/stances.csv" for e in EXPERIMENTS]


def all_rewards():
    return [f"{run_dir(e.key)}/rewards.csv" for e in EXPERIMENTS]


def judge_runs_model(name):
    """Judges that run the study's base model need its manifest (and a GPU on a GPU study)."""
    return name == "llm" and config["judge"]["llm"]["backend"] == "base_model"


def judge_settings(wildcards):
    settings = dict(config["judge"].get(wildcards.judge, {}))
    if judge_runs_model(wildcards.judge):
        settings["model_settings"] = model_settings()
    return settings


def judge_model_input(wildcards):
    return {"model": MODEL_MANIFEST} if judge_runs_model(wildcards.judge) else {}


def judges_model_input(wildcards):
    return {"model": MODEL_MANIFEST} if any(judge_runs_model(j) for j in JUDGES) else {}


def judge_files():
    return [f"{RESULTS}/judge/{name}.joblib" for name in JUDGES]


def judge_accuracies():
    return [f"{RESULTS}/judge/{name}_accuracy.json" for name in JUDGES]


def all_train_logs():
    return [f"{run_dir(e.key)}/train_log.csv" for e in EXPERIMENTS]


def report_outputs():
    return [
        f"{RESULTS}/findings.md",
        f"{RESULTS}/report/experiments_summary.html",
        f"{RESULTS}/report/questions",
        f"{RESULTS}/report/sweeps",
        f"{RESULTS}/report/responses",
        f"{RESULTS}/report/plots/training",
        f"{RESULTS}/report/plots/sweeps",
        f"{RESULTS}/report/plots/length_vs_epochs.png",
        f"{RESULTS}/report/plots/stance_shift_heatmap.png",
    ]


def all_outputs():
    return [
        f"{RESULTS}/tables/experiments.csv",
        f"{RESULTS}/tables/responses.csv",
        f"{RESULTS}/tables/categories.csv",
        f"{RESULTS}/tables/defects.csv",
        f"{RESULTS}/tables/generalisation.csv",
        f"{RESULTS}/tables/judges.csv",
        *[f"{RESULTS}/submissions/{e.name}.json" for e in EXPERIMENTS],
        *report_outputs(),
    ]
