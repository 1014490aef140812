from dpo_study.smk import call

call("dpo_study.reward:implicit_rewards", snakemake)  # noqa: F821 (set by Snakemake)
