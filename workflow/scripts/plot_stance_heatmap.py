from dpo_study.smk import call

call("dpo_study.plots:plot_stance_heatmap", snakemake)  # noqa: F821 (set by Snakemake)
