from dpo_study.report import write_question_tables
from dpo_study.smk import call

call(write_question_tables, snakemake)  # noqa: F821 (set by Snakemake)
