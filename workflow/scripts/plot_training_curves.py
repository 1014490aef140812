from dpo_study.plots import plot_training_curves
from dpo_study.smk import call

call(plot_training_curves, snakemake)  # noqa: F821 (set by Snakemake)
