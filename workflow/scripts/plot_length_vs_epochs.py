from dpo_study.smk import call

call("dpo_study.plots:plot_length_vs_epochs", snakemake)  # noqa: F821 (set by Snakemake)
