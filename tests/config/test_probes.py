"""The probe suite (config/probes.yaml) and the validation of users' probe files."""

import json
import re
from collections import Counter

import pytest
import yaml

from conftest import REPO
from dpo_study.stages.data import prompt_records
from dpo_study.config.data_files import load_probes, load_rows
from dpo_study.config.validation import ConfigError, check_prompt_ids

SUITE = REPO / "config/probes.yaml"
CATEGORIES = yaml.safe_load((REPO / "src/dpo_study/schemas/probes.schema.yaml").read_text())["items"]["properties"][
    "category"]["enum"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_suite_has_sixty_probes_in_every_category():
    probes = load_rows(SUITE, "probes")
    assert len(probes) >= 60
    counts = Counter(p["category"] for p in probes)
    assert set(counts) == set(CATEGORIES) and len(CATEGORIES) >= 7
    assert min(counts.values()) >= 5, counts


def test_in_distribution_probes_paraphrase_each_test_prompt():
    test = {str(row["id"]): row["prompt"] for row in json.loads((REPO / "data/test.json").read_text())}
    paraphrases = {p["id"].removeprefix("para_"): p["prompt"] for p in load_rows(SUITE, "probes")
                   if p["category"] == "in_distribution"}
    assert set(paraphrases) == set(test)
    for test_id, prompt in paraphrases.items():
        assert prompt != test[test_id]


def test_chinese_probes_are_chinese_with_their_language_and_the_rest_english():
    for probe in load_rows(SUITE, "probes"):
        if probe["category"] == "chinese":
            assert probe["language"] == "zh-Hant"
            assert CJK.search(probe["system"]) and CJK.search(probe["prompt"]), probe["id"]
        else:
            assert "language" not in probe and not CJK.search(probe["prompt"] + probe.get("system", "")), probe["id"]


def test_longer_answer_probes_change_the_system_prompt():
    longer = [p for p in load_rows(SUITE, "probes") if p["category"] == "longer_answer"]
    assert longer and all("100 characters" not in p["system"] for p in longer)


def test_prompt_records_carry_system_and_language():
    records = prompt_records([{"id": 51, "prompt": "q?"}], load_rows(SUITE, "probes"), "Be short.")
    by_id = {r["id"]: r for r in records}
    assert by_id["51"] == {"id": "51", "set": "test", "category": "test", "system": "Be short.", "prompt": "q?"}
    assert by_id["zh_01"]["language"] == "zh-Hant" and by_id["zh_01"]["system"] != "Be short."
    assert by_id["everyday_01"]["system"] == "Be short."


GOOD = {"id": "mine_01", "category": "unrelated", "prompt": "How do I boil an egg?"}


def write_probes(tmp_path, rows, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(rows, allow_unicode=True) if name.endswith(".yaml") else json.dumps(rows))
    return path


@pytest.mark.parametrize("name", ["mine.yaml", "mine.json"])
def test_users_probe_files_in_yaml_or_json(tmp_path, name):
    path = write_probes(tmp_path, [GOOD], name)
    assert load_probes([str(SUITE), str(path)])[-1] == GOOD


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([GOOD, {**GOOD, "id": "x2", "category": "poetry"}],
         r"""mine\.yaml: row 1 \(id "x2"\), field 'category' = "poetry": must be one of "in_distribution\""""),
        ([{"id": "x1", "category": "unrelated"}], r"""mine\.yaml: row 0 \(id "x1"\): missing field 'prompt'"""),
        ([{"category": "unrelated", "prompt": "q?"}], r"row 0: missing field 'id'"),
        ([GOOD, {**GOOD, "prompt": "again?"}], r"""mine\.yaml: row 1, field 'id' = "mine_01": duplicates the id of row 0"""),
        ([{**GOOD, "sytem": "Be long."}], r"""row 0 \(id "mine_01"\): unknown field 'sytem' \(did you mean 'system'\?\)"""),
        ([{**GOOD, "category": "chinese", "system": "簡短回答。"}], r"""row 0 \(id "mine_01"\): missing field 'language'"""),
        ([{**GOOD, "prompt": ""}], r"field 'prompt'"),
        ([{**GOOD, "language": "Chinese"}], r"field 'language'"),
        ({"id": "p"}, r"mine\.yaml: must be a list of rows, each with the fields id, category, prompt; got a mapping"),
    ],
)
def test_bad_probe_files_name_file_row_and_field(tmp_path, rows, message):
    path = write_probes(tmp_path, rows)
    with pytest.raises(ConfigError, match=message):
        load_probes([str(path)])


def test_a_probe_id_may_appear_once_across_files(tmp_path):
    first = write_probes(tmp_path, [GOOD], "first.yaml")
    second = write_probes(tmp_path, [{**GOOD, "prompt": "other?"}], "second.yaml")
    files = {str(path): load_rows(path, "probes") for path in (first, second)}
    with pytest.raises(ConfigError, match=r"second\.yaml: row 0, field 'id' = \"mine_01\": repeats an id of .*first\.yaml"):
        check_prompt_ids(files)
