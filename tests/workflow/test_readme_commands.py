"""Every `snakemake ...` command that README.md, the docs/*.md pages and the Makefile give runs, as
written, as a dry run.

A command whose options swallow its target (``--configfile a.yaml all``) or that names a missing file
fails here, not on a newcomer's first try.
"""

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from snakemake_helpers import snakemake_env

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = {path.relative_to(REPO).as_posix(): path.read_text(encoding="utf-8") for path in sorted((REPO / "docs").glob("*.md"))}
PAGES = {"README.md": README, **DOCS}
# The code spans that are a command; `ENV=value snakemake ...` too.
COMMAND = re.compile(r"`((?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?snakemake(?: [^`]*)?)`")
# A command that a page shows failing, with the error it says it gives.
FAILING = re.compile(r"`((?:\.venv/bin/)?snakemake [^`]*)` stops\s+with `([^`]*)`")
# A config file that a page writes out for the reader: a yaml block whose first line is `# <name>.yaml`.
EXAMPLE_FILE = re.compile(r"^( *)```yaml\n *# ([\w.-]+\.ya?ml)\n(.*?)^ *```", re.M | re.S)
# Options that need a finished study or a lock rather than a plan: checked by the parser only.
PARSE_ONLY = ("--report", "--unlock", "--lint")  # --lint: tests/workflow/test_workflow_style.py runs it
# Options that only read: the command runs as written.
AS_WRITTEN = ("--list-untracked",)


def commands_of(text: str) -> list[str]:
    return [c for c in COMMAND.findall(text) if c not in dict(FAILING.findall(text))]


def readme_commands() -> list[str]:
    return commands_of(README)


def docs_commands() -> list[str]:
    return [c for text in DOCS.values() for c in commands_of(text)]


def failing_commands() -> list[tuple[str, str]]:
    return [pair for text in PAGES.values() for pair in FAILING.findall(text)]


def example_files() -> dict[str, str]:
    """The config files that the pages write out, by name (a name written twice must hold one text)."""
    files = {}
    for page, text in PAGES.items():
        for indent, name, body in EXAMPLE_FILE.findall(text):
            body = textwrap.dedent(body)
            assert files.setdefault(name, body) == body, f"{page}: two different {name}"
            assert not (REPO / name).exists(), f"{page}: the example {name} would hide the repository's file"
    return files


def makefile_commands() -> list[str]:
    """The snakemake lines of `make -n demo report` (what make would run), with the venv path as written."""
    result = subprocess.run(["make", "-n", "-B", "demo", "report", "BIN=.venv/bin"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    return [line.strip() for line in result.stdout.splitlines() if re.match(r"\S*snakemake ", line.strip())]


def split(command: str) -> tuple[dict, list[str]]:
    words = shlex.split(command.replace("<account>", "acct"))
    env = {}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert words[0].endswith("snakemake"), command
    return env, words[1:]


def workdir_like_a_checkout(tmp_path):
    """A fresh checkout's top level (Snakefile, config, data, profiles, ...), without results."""
    for entry in REPO.iterdir():
        if entry.name not in ("results", ".snakemake", ".venv", ".git", ".pytest_cache"):
            (tmp_path / entry.name).symlink_to(entry)
    for name, text in example_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def run_snakemake(args, tmp_path, env=None):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir_like_a_checkout(tmp_path),
                          capture_output=True, text=True, env=snakemake_env({"HF_HUB_OFFLINE": "0", **(env or {})}),
                          timeout=600)


def parsed(args):
    from snakemake.cli import get_argument_parser

    return get_argument_parser().parse_args(args)


def assert_parses_as_meant(command, args):
    """Targets are rule names or paths and config files exist (a swallowed target breaks either)."""
    options = parsed(args)
    for target in options.targets or []:
        assert re.fullmatch(r"[A-Za-z_][\w/.-]*", target), f"{command}: target {target!r}"
    for path in options.configfile or []:
        assert (REPO / path).is_file() or str(path) in example_files(), \
            f"{command}: --configfile {path!r} is not a file (a swallowed target?)"


def test_readme_lists_the_commands_a_user_types():
    commands = readme_commands()
    assert any(c.startswith("snakemake all --cores 1 --resources gpu=1") for c in commands), commands
    assert any("--configfile config/demo.yaml" in c for c in commands), commands
    assert any("--workflow-profile profiles/slurm" in c for c in commands), commands


def test_the_readme_first_study_writes_its_overlay_out():
    """The first study's command overlays a file that the README shows in full (the dry run uses it)."""
    assert "my_study.yaml" in example_files()
    assert any("config/demo.yaml my_study.yaml" in c for c in readme_commands())


def test_the_docs_pages_give_commands():
    assert DOCS and docs_commands(), "docs/*.md give no snakemake command: is the pattern still right?"


@pytest.mark.parametrize("command", sorted(set(readme_commands() + docs_commands() + makefile_commands())))
def test_documented_command_dry_runs(command, tmp_path):
    env, args = split(command)
    assert_parses_as_meant(command, args)
    if any(option in args for option in PARSE_ONLY):
        return
    as_written = any(option in args for option in AS_WRITTEN)
    result = run_snakemake(args if as_written else [*args, "-n"], tmp_path, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command}\n{output[-4000:]}"
    assert as_written or "Job stats" in output or "Nothing to be done" in output, output[-4000:]


@pytest.mark.parametrize(("command", "error"), sorted(set(failing_commands())))
def test_the_order_that_readme_warns_about_fails_as_it_says(command, error, tmp_path):
    env, args = split(command)
    result = run_snakemake([*args, "-n"], tmp_path, env)
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


def test_a_second_configfile_flag_replaces_the_first():
    """README: overlays go to one flag; argparse keeps only the last of repeated --configfile flags."""
    assert parsed(["all", "--configfile", "a.yaml", "--configfile", "b.yaml"]).configfile == [Path("b.yaml")]
    assert parsed(["all", "--configfile", "a.yaml", "b.yaml"]).configfile == [Path("a.yaml"), Path("b.yaml")]


def test_make_demo_runs_the_target_first():
    commands = makefile_commands()
    assert commands and all(split(c)[1][0] == "all" for c in commands), commands
    assert any("--logger rich" in c for c in commands), commands


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci/run").read_text()
    assert re.search(r"^make demo$", ci, re.M) and re.search(r"^make test$", ci, re.M)
    assert ci.index("make demo") < ci.index("make test")
