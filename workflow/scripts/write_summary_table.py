from dpo_study.report import write_summary_table
from dpo_study.smk import call

call(write_summary_table, snakemake)  # noqa: F821 (set by Snakemake)
