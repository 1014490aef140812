from dpo_study.runtime.smk import call

call("dpo_study.stages.reward:implicit_rewards", snakemake)  # noqa: F821 (set by Snakemake)
