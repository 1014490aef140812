from dpo_study.runtime.smk import call

call("dpo_study.stages.plots:plot_length_vs_epochs", snakemake)  # noqa: F821 (set by Snakemake)
