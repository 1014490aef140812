"""bench/compare_studies.py on the shared demo study (tests/conftest.py: demo_study)."""

import shutil
import subprocess
import sys

import pytest

from conftest import REPO

BENCH = REPO / "bench"


def compare(a, b):
    return subprocess.run([sys.executable, BENCH / "compare_studies.py", a, b], capture_output=True, text=True,
                          cwd=REPO)

@pytest.mark.slow
def test_compare_studies_finds_equal_studies_equal_and_names_each_difference(demo_study, tmp_path):
    results = demo_study[0] / "results"
    same = compare(results, results)
    assert same.returncode == 0 and same.stdout.strip().startswith("equal: 6 tables"), same.stderr
    changed = tmp_path / "results"
    for folder in ("tables", "submissions"):
        shutil.copytree(results / folder, changed / folder)
    for name in ("findings.md", "findings.zh-Hant.md"):
        shutil.copy(results / name, changed / name)
    experiments = changed / "tables/experiments.csv"
    experiments.write_text(experiments.read_text().replace("ratio_1_seed7", "ratio_1_seed8"))
    submission = next((changed / "submissions").glob("*.json"))
    submission.write_bytes(submission.read_bytes() + b"\n")
    out = compare(results, changed)
    assert out.returncode == 1
    assert "tables/experiments.csv: experiment differs in 1 rows" in out.stdout
    assert f"submissions/{submission.name}: not byte-identical" in out.stdout
