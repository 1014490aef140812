"""Stance judges: label each response support / oppose with a score.

The first judge, ``ngram``, is a character n-gram TF-IDF + logistic regression classifier trained
on the data's own support and oppose texts; character n-grams need no word segmentation, so it
works on Chinese text too. Its cross-validated accuracy is written beside it.
"""

from __future__ import annotations

import logging

import joblib
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from dpo_study import atomic
from dpo_study.data import load_rows, read_jsonl

log = logging.getLogger(__name__)


def training_texts(rows: list[dict]) -> tuple[list[str], list[str]]:
    texts = [r["support"] for r in rows] + [r["oppose"] for r in rows]
    labels = ["support"] * len(rows) + ["oppose"] * len(rows)
    return texts, labels


def make_ngram_judge(seed: int = 0):
    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
    )


def train_judge(train: str, judge: str, accuracy: str, cv_folds: int = 5, seed: int = 0) -> None:
    """Stage: fit the n-gram judge on the data's stance texts; write its cross-validated accuracy."""
    texts, labels = training_texts(load_rows(train, "train"))
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(make_ngram_judge(seed), texts, labels, cv=folds)
    model = make_ngram_judge(seed).fit(texts, labels)
    with atomic.atomic_path(judge) as temp:
        joblib.dump(model, temp)
    report = {"judge": "ngram", "cv_folds": cv_folds, "cv_accuracy": round(float(scores.mean()), 4),
              "cv_accuracy_std": round(float(scores.std()), 4), "examples": len(texts)}
    atomic.write_json(accuracy, report)
    log.info("n-gram judge: %d-fold CV accuracy %.3f", cv_folds, scores.mean())


def support_scores(model, texts: list[str]) -> list[float]:
    support_column = list(model.classes_).index("support")
    return [float(p[support_column]) for p in model.predict_proba(texts)]


def judge_responses(responses: str, judge: str, stances: str) -> None:
    """Stage: one row per response with its stance label and support probability."""
    model = joblib.load(judge)
    rows = read_jsonl(responses)
    scores = support_scores(model, [r["response"] or " " for r in rows])
    table = pd.DataFrame(rows)
    table["support_score"] = [round(s, 4) for s in scores]
    table["stance"] = ["support" if s >= 0.5 else "oppose" for s in scores]
    table["chars"] = table["response"].str.len()
    with atomic.atomic_path(stances) as temp:
        table.to_csv(temp, index=False)
