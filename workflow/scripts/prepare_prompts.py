from dpo_study.runtime.smk import call

call("dpo_study.stages.data:write_prompts", snakemake)  # noqa: F821 (set by Snakemake)
