from dpo_study.report import write_response_tables
from dpo_study.smk import call

call(write_response_tables, snakemake)  # noqa: F821 (set by Snakemake)
