"""Two finished studies, the same results? The check behind a refactoring's "behaviour identical".

    python bench/compare_studies.py BEFORE/results AFTER/results

Equal: the six tables of ``tables/`` (timing and provenance columns aside: they record when and with
which code a run ran, not what it found), every submission file byte for byte, and both findings
pages. Prints each difference and exits 1 when there is one. It only reads, so it needs no --tiny:
tests/bench/test_bench.py runs it on the tests' finished demo study.
"""

import argparse
import filecmp
import sys
from pathlib import Path

import pandas as pd

TABLES = ["experiments", "responses", "categories", "defects", "generalisation", "judges"]
FINDINGS = ["findings.md", "findings.zh-Hant.md"]
# When and with which code a run ran: dpo_study.stages.tables.TIMING_COLUMNS and the provenance record.
NOT_RESULTS = {"train_seconds", "git_commit", "code_version", "config_hash"}


def results_only(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in table.columns if c in NOT_RESULTS or "version" in c])


def differences(before: Path, after: Path) -> list[str]:
    found = []
    for name in TABLES:
        a, b = (results_only(pd.read_csv(folder / "tables" / f"{name}.csv")) for folder in (before, after))
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            found.append(f"tables/{name}.csv: shape or columns differ ({a.shape} vs {b.shape}; "
                         f"{sorted(set(a.columns) ^ set(b.columns))})")
            continue
        for column in a.columns:
            differ = ~((a[column] == b[column]) | (a[column].isna() & b[column].isna()))
            if differ.any():
                row = differ.idxmax()
                found.append(f"tables/{name}.csv: {column} differs in {int(differ.sum())} rows "
                             f"(row {row}: {a.at[row, column]!r} vs {b.at[row, column]!r})")
    names = sorted({p.name for folder in (before, after) for p in (folder / "submissions").glob("*.json")})
    for name in names:
        files = [folder / "submissions" / name for folder in (before, after)]
        if not all(f.is_file() for f in files) or not filecmp.cmp(*files, shallow=False):
            found.append(f"submissions/{name}: not byte-identical")
    for name in FINDINGS:
        if (before / name).read_text() != (after / name).read_text():
            found.append(f"{name}: differs")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a finished study's results folder")
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    found = differences(args.before, args.after)
    for line in found:
        print(line)
    submissions = len(list((args.before / "submissions").glob("*.json")))
    print("different" if found else f"equal: {len(TABLES)} tables, {submissions} submissions, {len(FINDINGS)} findings pages")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
