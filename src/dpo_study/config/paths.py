"""Where a study's results go: every artifact's path holds the keys of what shapes it
(docs/caching.md), so results of other settings stay side by side. A part of ``Study``
(``config.study``), kept apart because it is long: it reads the Study's config, keys, runs,
experiments, prompt sets and judges."""

from __future__ import annotations

from dpo_study.config.artifacts import manifest_files
from dpo_study.config.model import model_slug
from dpo_study.config.strategies import needs_base_responses


def model_id(name: str, keys: dict) -> str:
    return f"demo-{keys['demo_model']}" if name == "demo" else model_slug(name)


def manifest_path(config: dict, keys: dict) -> str:
    """Where resolve_model/build_demo_model record the model's folder."""
    return f"{config['results']}/models/{model_id(config['model']['name'], keys)}.json"


class StudyPaths:
    """The artifact paths of ``Study`` (its base class)."""

    @property
    def results(self) -> str:
        return self.config["results"]

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    @property
    def model_slug(self) -> str:
        return model_slug(self.model_name)

    @property
    def model_id(self) -> str:
        """The model as built or downloaded: the demo model by its settings, a Hub model by its name."""
        return model_id(self.model_name, self.keys)

    @property
    def manifest(self) -> str:
        return manifest_path(self.config, self.keys)

    @property
    def model_results(self) -> str:
        """Everything the model makes: under the model (the demo model by its build settings) as
        loaded (its settings)."""
        return f"{self.results}/{self.model_id}/model-{self.keys['model']}"

    def run_dir(self, key: str) -> str:
        return f"{self.model_results}/runs/training-{self.keys['training']}/{key}"

    def checkpoint_dir(self, key: str) -> str:
        """Not an output on purpose: it must survive a failed or killed job, for the rerun to resume."""
        return f"{self.run_dir(key)}/checkpoints"

    def run_files(self, name: str) -> list[str]:
        """One file of every experiment's run, in experiment order (a run shared by two names twice)."""
        return [f"{self.run_dir(e.key)}/{name}" for e in self.experiments]

    @property
    def base_dir(self) -> str:
        return f"{self.model_results}/base"

    def answers_dir(self, model_dir: str) -> str:
        """The answers of the base model (``base_dir``) or of a run, by generation settings."""
        return f"{model_dir}/generation-{self.keys['generation']}"

    def responses(self, model_dir: str, prompt_set: str) -> str:
        return f"{self.answers_dir(model_dir)}/responses/{prompt_set}.jsonl"

    def stances(self, model_dir: str, prompt_set: str) -> str:
        return f"{self.answers_dir(model_dir)}/judge-{self.keys['judge']}/stances/{prompt_set}.csv"

    def stances_log(self, model_dir: str, prompt_set: str) -> str:
        return self.stances(model_dir, prompt_set).removesuffix(".csv") + ".log"

    def measures(self, model_dir: str, prompt_set: str) -> str:
        """Every measure of one answer file that needs no judge (dpo_study.stages.measures), keyed like it."""
        return f"{self.answers_dir(model_dir)}/measures/{prompt_set}.parquet"

    def rewards(self, key: str, prompt_set: str) -> str:
        return f"{self.answers_dir(self.run_dir(key))}/rewards/{prompt_set}.csv"

    def prompts(self, prompt_set: str) -> str:
        return f"{self.results}/prompts/{prompt_set}.jsonl"

    def base_stances(self) -> list[str]:
        """The base model's judged answers, per prompt set."""
        return [self.stances(self.base_dir, prompt_set) for prompt_set in self.prompt_sets]

    def run_stances(self) -> list[str]:
        """Every experiment's judged answers, per prompt set (experiment-major)."""
        return [self.stances(self.run_dir(e.key), s) for e in self.experiments for s in self.prompt_sets]

    def run_rewards(self) -> list[str]:
        """Every experiment's implicit rewards, per prompt set (experiment-major)."""
        return [self.rewards(e.key, s) for e in self.experiments for s in self.prompt_sets]

    def prompt_files(self) -> list[str]:
        """Every prompt set's prompts, in the study's order (the background of the relevance measure)."""
        return [self.prompts(prompt_set) for prompt_set in self.prompt_sets]

    def tables_manifest(self) -> dict:
        """What the tables job joins, by name: the base model's files per prompt set, and per
        experiment its record (name, parameters, config hash), run folder, training summary and
        files per prompt set. A params entry of the job, so that a change re-runs it."""
        def answers(model_dir: str, key: str | None = None) -> dict:
            return {s: {"stances": self.stances(model_dir, s), "measures": self.measures(model_dir, s),
                        **({"rewards": self.rewards(key, s)} if key else {})} for s in self.prompt_sets}

        return {
            "base": {"answers": answers(self.base_dir)},
            "experiments": [{"record": record, "run": self.run_dir(e.key),
                             "summary": f"{self.run_dir(e.key)}/train_summary.json",
                             "answers": answers(self.run_dir(e.key), e.key)}
                            for e, record in zip(self.experiments, self.experiment_records(), strict=True)],
        }

    def tables_inputs(self) -> list[str]:
        """Every file of ``tables_manifest``, each once."""
        return list(dict.fromkeys(manifest_files(self.tables_manifest())))

    @property
    def train_responses(self) -> str:
        """The base model's answers to the training prompts (for on_policy pairs)."""
        return f"{self.answers_dir(self.base_dir)}/train_responses.jsonl"

    def pairs_file(self, key: str) -> str:
        """Pairs built from the base model's own answers belong to that model and its generation
        settings; the others are shared."""
        params = self.runs[key].params
        own = needs_base_responses(params["strategy"], params.get("mix_weights"))
        folder = f"{self.answers_dir(self.base_dir)}/pairs" if own else f"{self.results}/pairs"
        return f"{folder}/{self.runs[key].data_key}.jsonl"

    def pairs_inputs(self, data_key: str) -> dict:
        """The base model's answers to the training prompts only for strategies that reject them."""
        data = self.data_params(data_key)
        inputs = {"train": self.train_data}
        if needs_base_responses(data["strategy"], data.get("mix_weights")):
            inputs["base_responses"] = self.train_responses
        return inputs

    def aligned_responses(self, name: str) -> str:
        """An experiment's answers to the test prompts."""
        return self.responses(self.run_dir(self.by_name[name].key), "test")

    @property
    def judge_dir(self) -> str:
        return f"{self.results}/judge/judge-{self.keys['judge']}"

    def judge_files(self) -> list[str]:
        return [f"{self.judge_dir}/{name}.joblib" for name in self.judges]

    def judge_accuracies(self) -> list[str]:
        return [f"{self.judge_dir}/{name}_accuracy.json" for name in self.judges]

    def report_outputs(self) -> list[str]:
        report = f"{self.results}/report"
        return [
            f"{self.results}/findings.md",
            f"{report}/experiments_summary.html",
            f"{report}/questions",
            f"{report}/sweeps",
            f"{report}/responses",
            f"{report}/plots/training",
            f"{report}/plots/sweeps",
            f"{report}/plots/length_vs_epochs.png",
            f"{report}/plots/stance_shift_heatmap.png",
        ]

    def all_outputs(self) -> list[str]:
        tables = ("experiments", "responses", "categories", "defects", "generalisation", "judges")
        return [
            *[f"{self.results}/tables/{name}.csv" for name in tables],
            *[f"{self.results}/submissions/{e.name}.json" for e in self.experiments],
            *self.report_outputs(),
        ]
