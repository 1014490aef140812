from dpo_study.backends import prepare_job

# Before anything imports transformers or starts CUDA: this job's own GPU, and Unsloth if it trains with it.
prepare_job(snakemake)  # noqa: F821 (set by Snakemake)

from dpo_study.generate import generate_responses
from dpo_study.smk import call

call(generate_responses, snakemake)  # noqa: F821 (set by Snakemake)
