from dpo_study.modeling import resolve_model
from dpo_study.smk import call

call(resolve_model, snakemake)  # noqa: F821 (set by Snakemake)
