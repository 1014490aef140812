import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The stage code lives in src/; put it first on the path of every job, in any environment.
SRC = str(Path(workflow.basedir, "src").resolve())
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
sys.path.insert(0, SRC)

from dpo_study.experiments import ConfigError, expand
from dpo_study.data import check_strategies, load_probes, load_rows
from dpo_study.strategies import needs_base_responses
from dpo_study.modeling import check_model_name, model_slug


validate(config, workflow.source_path("../schemas/config.schema.yaml"))


def checked(check, *args):
    """Run an input check at parse time; a ConfigError stops the run before any job."""
    try:
        return check(*args)
    except ConfigError as error:
        raise WorkflowError(f"Invalid study input: {error}") from None


EXPERIMENTS = checked(expand, config)
RUNS = {e.key: e for e in EXPERIMENTS}  # identical parameter sets share one run
BY_NAME = {e.name: e for e in EXPERIMENTS}
TRAIN_ROWS = checked(load_rows, config["data"]["train"], "train")
checked(load_rows, config["data"]["test"], "test")
checked(load_probes, config["data"]["probes"])
for e in EXPERIMENTS:
    if e.params["data_size"] > len(TRAIN_ROWS):
        raise WorkflowError(
            f"Invalid study input: experiment {e.name!r}, field data_size: {e.params['data_size']} "
            f"is larger than the {len(TRAIN_ROWS)} rows of {config['data']['train']}"
        )
checked(check_strategies, EXPERIMENTS, TRAIN_ROWS, config["data"]["train"])
checked(check_model_name, config["model"]["name"])

RESULTS = config["results"]
MODEL = config["model"]["name"]
MODEL_SLUG = model_slug(MODEL)
MODEL_MANIFEST = f"{RESULTS}/models/{MODEL_SLUG}.json"
MODEL_RESULTS = f"{RESULTS}/{MODEL_SLUG}"
ENV = f"../../envs/{config['software']['env']}.yaml"


wildcard_constraints:
    key="|".join(RUNS) or "none",
    data_key="[^/]+",
    experiment="|".join(BY_NAME),


# ---- input functions and params -------------------------------------------------------


def model_settings():
    return {
        "trust_remote_code": config["model"]["trust_remote_code"],
        "load_in_4bit": config["model"]["load_in_4bit"],
    }


def training_settings():
    return {**config["training"], "max_length": config["model"]["max_seq_length"]}


def experiment_params(wildcards):
    return RUNS[wildcards.key].params


def pairs_file(wildcards):
    """Pairs built from the base model's own answers belong to that model; the others are shared."""
    e = RUNS[wildcards.key]
    folder = MODEL_RESULTS if needs_base_responses(e.params["strategy"], e.params.get("mix_weights")) else RESULTS
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


def named_experiment_params(wildcards):
    return BY_NAME[wildcards.experiment].params


def aligned_responses(wildcards):
    return f"{run_dir(BY_NAME[wildcards.experiment].key)}/responses.jsonl"


def experiment_records():
    return [{"name": e.name, **e.params} for e in EXPERIMENTS]


def all_summaries():
    return [f"{run_dir(e.key)}/train_summary.json" for e in EXPERIMENTS]


def all_stances():
    return [f"{run_dir(e.key)}/stances.csv" for e in EXPERIMENTS]


def all_outputs():
    return [
        f"{RESULTS}/tables/experiments.csv",
        f"{RESULTS}/tables/responses.csv",
        *[f"{RESULTS}/submissions/{e.name}.json" for e in EXPERIMENTS],
    ]
