"""Smoke test of bench/dag_scale.py on the CPU: it times real dry runs and counts their jobs."""

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import dag_scale  # noqa: E402


def test_dag_scale_tiny(tmp_path):
    rows = dag_scale.main(["--tiny", "--json", str(tmp_path / "dag.json")])
    assert [r["experiments"] for r in rows] == list(dag_scale.TINY_SIZES)
    # Per experiment a training and a submission, and per prompt set (test, config/probes.yaml) a
    # generation, a judging, an implicit reward and the answers' measures.
    per_experiment = 2 + 4 * 2
    assert rows[1]["jobs"] - rows[0]["jobs"] == per_experiment * (rows[1]["experiments"] - rows[0]["experiments"])
    assert all(r["wall_s"] > 0 and r["cpu_s"] > 0 for r in rows)
    assert (tmp_path / "dag.json").is_file()
