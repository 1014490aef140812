from dpo_study.runtime.smk import call

call("dpo_study.stages.measures:measure_answers", snakemake)  # noqa: F821 (set by Snakemake)
