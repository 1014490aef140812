from dpo_study.runtime.smk import call

call("dpo_study.stages.judge:train_judge", snakemake)  # noqa: F821 (set by Snakemake)
