from dpo_study.runtime.smk import call

call("dpo_study.stages.data:write_train_prompts", snakemake)  # noqa: F821 (set by Snakemake)
