from dpo_study.smk import call

call("dpo_study.plots:plot_training_curves", snakemake)  # noqa: F821 (set by Snakemake)
