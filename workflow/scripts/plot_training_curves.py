from dpo_study.runtime.smk import call

call("dpo_study.stages.plots:plot_training_curves", snakemake)  # noqa: F821 (set by Snakemake)
