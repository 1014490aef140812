from dpo_study.demo_model import build_demo_model
from dpo_study.smk import call

call(build_demo_model, snakemake)  # noqa: F821 (set by Snakemake)
