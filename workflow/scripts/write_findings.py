from dpo_study.findings import write_findings
from dpo_study.smk import call

call(write_findings, snakemake)  # noqa: F821 (set by Snakemake)
