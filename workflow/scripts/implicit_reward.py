from dpo_study.backends import prepare_job

# Before anything imports transformers or starts CUDA: this job's own GPU (when it declares one).
prepare_job(snakemake)  # noqa: F821 (set by Snakemake)

from dpo_study.reward import implicit_rewards
from dpo_study.smk import call

call(implicit_rewards, snakemake)  # noqa: F821 (set by Snakemake)
