from dpo_study.tables import write_submission
from dpo_study.smk import call

call(write_submission, snakemake)  # noqa: F821 (set by Snakemake)
