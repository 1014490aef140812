"""The study's questions (two experiments compared, per prompt category): names and their parse-time check."""

from __future__ import annotations

from dpo_study.config.errors import ConfigError


TEST_CATEGORY = "test"  # the category data.prompt_records gives the test prompts


ALL_CATEGORIES = "all"


def question_categories(question: dict, available: list[str]) -> list[str]:
    """The categories a question compares: its ``categories`` (all of them for 'all'), else the test set."""
    chosen = question.get("categories")
    if chosen is None:
        return [TEST_CATEGORY]
    return list(available) if chosen == ALL_CATEGORIES else list(chosen)


def check_questions(questions: list[dict], experiment_names, probe_categories: list[str]) -> None:
    """Parse-time check: every question has a unique name and names known experiments and categories."""
    names = set(experiment_names)
    categories = [TEST_CATEGORY, *probe_categories]
    seen = set()
    for index, question in enumerate(questions):
        where = f"questions[{index}] ({question['name']})"
        if question["name"] in seen:
            raise ConfigError(f"{where}.name: duplicate question name {question['name']!r}")
        seen.add(question["name"])
        for side in ("a", "b"):
            if question[side] not in names:
                raise ConfigError(f"{where}.{side}: {question[side]!r} is not an experiment name "
                                  f"(known: {', '.join(sorted(names))})")
        if question["a"] == question["b"]:
            raise ConfigError(f"{where}.b: {question['b']!r} is also a; a question compares two different experiments")
        unknown = [c for c in question_categories(question, categories) if c not in categories]
        if unknown:
            raise ConfigError(f"{where}.categories: {unknown} are not prompt categories "
                              f"(known: {', '.join(categories)})")
