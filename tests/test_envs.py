"""Conda channels are unreachable here, so check instead that envs/*.yaml pin what pyproject.toml pins."""

import tomllib

import pytest
import yaml

from conftest import REPO


def pip_pins(env_file):
    env = yaml.safe_load((REPO / "envs" / env_file).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {line for line in pip if not line.startswith("-")}


@pytest.mark.parametrize("extra", ["cpu", "gpu"])
def test_env_pins_equal_pyproject_extra(extra):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = set(pyproject["project"]["optional-dependencies"][extra])
    env_pins = pip_pins(f"{extra}.yaml") - {p for p in pip_pins(f"{extra}.yaml") if p.startswith("torch==")}
    assert env_pins == pins


def test_cpu_env_keeps_a_cpu_torch():
    env = yaml.safe_load((REPO / "envs" / "cpu.yaml").read_text())
    assert "cpuonly" in env["dependencies"]
    assert not any(str(p).startswith(("unsloth", "bitsandbytes")) for p in pip_pins("cpu.yaml"))
