from dpo_study.reward import implicit_rewards
from dpo_study.smk import call

call(implicit_rewards, snakemake)  # noqa: F821 (set by Snakemake)
