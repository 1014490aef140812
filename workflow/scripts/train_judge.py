from dpo_study.smk import call

call("dpo_study.judge:train_judge", snakemake)  # noqa: F821 (set by Snakemake)
