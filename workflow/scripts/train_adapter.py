from dpo_study.smk import call

call("dpo_study.train:train_adapter", snakemake)  # noqa: F821 (set by Snakemake)
