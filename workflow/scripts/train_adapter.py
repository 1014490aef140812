from dpo_study.runtime.smk import call

call("dpo_study.stages.train:train_adapter", snakemake)  # noqa: F821 (set by Snakemake)
