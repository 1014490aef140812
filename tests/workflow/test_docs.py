"""README.md and docs/*.md say what the repository holds: the paths and links they give exist, and the
counts and defaults they quote are those of the bundled data, the schema and the code.

(Their `snakemake ...` commands are dry-run by tests/workflow/test_readme_commands.py.)
"""

import json
import re
from collections import Counter

import pytest
import yaml

from conftest import REPO

PAGES = {path.relative_to(REPO).as_posix(): path.read_text(encoding="utf-8")
         for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]}
# A code span naming a file or folder of the repository (`src/dpo_study/analysis/metrics.py`, `profiles/slurm`).
REPO_PATH = re.compile(r"`((?:src|tests|workflow|config|data|profiles|envs|bench|docs|\.ci)/[\w./-]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FRONT_DOOR_LINES = 150


def text(page: str) -> str:
    """A page's text on one line per paragraph, so that a quoted phrase may span a line break."""
    return re.sub(r"\s+", " ", PAGES[page])


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_front_door_is_short_and_starts_with_the_two_commands():
    readme = PAGES["README.md"]
    assert len(readme.splitlines()) <= FRONT_DOOR_LINES
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert [line.split("#")[0].strip() for line in block.splitlines()] == ["make demo", "make test"]
    assert "docs/img/report.png" in readme


def test_the_screenshot_is_committed_and_small():
    png = REPO / "docs/img/report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 300_000


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_paths_a_page_names_exist(page):
    missing = [path for path in REPO_PATH.findall(PAGES[page]) if not (REPO / path.rstrip("/")).exists()]
    assert not missing, f"{page} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_links_of_a_page_lead_somewhere(page):
    folder = (REPO / page).parent
    for target in LINK.findall(PAGES[page]):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (folder / path).resolve() if path else REPO / page
        assert file.exists(), f"{page}: link to {target}: no such file"
        if anchor:
            assert anchor in anchors(file.read_text(encoding="utf-8")), f"{page}: link to {target}: no such heading"


def test_every_docs_page_is_listed_on_the_front_door():
    linked = set(LINK.findall(PAGES["README.md"]))
    assert {page for page in PAGES if page.startswith("docs/")} <= linked


def test_the_bundled_data_counts_are_those_the_docs_quote():
    train = json.loads((REPO / "data/train.json").read_text())
    test = json.loads((REPO / "data/test.json").read_text())
    probes = yaml.safe_load((REPO / "config/probes.yaml").read_text())
    holdout = json.loads((REPO / "data/judge_holdout.json").read_text())
    ambiguous = [row for row in train if row.get("ambiguous")]
    labels = Counter(row["label"] for row in holdout)
    chinese = sum(row["language"].startswith("zh") for row in holdout)
    assert f"`config/probes.yaml` has {len(probes)} probes in {len({p['category'] for p in probes})} categories" \
        in text("docs/configuring.md")
    assert (f"`data/train.json` marks {len(ambiguous)}, {sum(row.get('ambiguous', False) for row in train[:50])} "
            "of them within the first 50") in text("docs/configuring.md")
    assert len(set(labels.values())) == 1 and chinese * 3 == len(holdout)
    assert f"{len(holdout)} project-written answers, {labels['support']} per label, a third in" in text("docs/measures.md")
    assert f"on the {len(test)} test prompts" in text("docs/results.md")


def test_the_defaults_the_docs_quote_are_the_code_s():
    from dpo_study.config import experiments
    from dpo_study.analysis import metrics
    from dpo_study.runtime import worker

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    defaults = {name: spec.get("default") for name, spec in schema["training"]["properties"].items()}
    demo = {name: spec.get("default") for name, spec in schema["demo_model"]["properties"].items()}
    assert (f"by default {demo['num_layers']} layers of width {demo['hidden_size']}, a byte-level BPE tokenizer of "
            f"at most {demo['vocab_size']:,} tokens") in text("docs/measures.md")
    assert f"`training.checkpoint_steps` optimizer steps ({defaults['checkpoint_steps']};" in text("docs/reliability.md")
    assert defaults["stop_grad_norm"] == 1e4 and "`training.stop_grad_norm` (10⁴)" in text("docs/reliability.md")
    idle = schema["software"]["properties"]["worker_idle_seconds"]["default"]
    assert idle == worker.DEFAULT_IDLE_SECONDS
    assert f"`software.worker_idle_seconds` ({idle}; `DPO_STUDY_WORKER_IDLE_SECONDS` overrides it)" in text("docs/gpu.md")
    assert f"is below {metrics.RELEVANCE_FLOOR}" in text("docs/measures.md")
    assert f"longer than {experiments.SETTINGS_KEY_LIMIT} characters" in text("docs/caching.md")


def test_the_slurm_limits_the_docs_quote_are_the_profile_s():
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    default, gpu_rules = profile["default-resources"], profile["set-resources"]
    memory = {rule["mem_mb"] for rule in gpu_rules.values()}
    others = {rule["runtime"] for name, rule in gpu_rules.items() if name != "train_adapter"}
    assert len(memory) == 1 and len(others) == 1
    assert (f"{default['runtime']} min and {default['mem_mb']} MB a job; GPU rules {memory.pop()} MB and "
            f"{gpu_rules['train_adapter']['runtime'].split()[0]} min (training) or {others.pop().split()[0]} min "
            "(the others) times the attempt") in text("docs/clusters.md")
    assert f"(`retries: {profile['retries']}`)" in text("docs/clusters.md")
