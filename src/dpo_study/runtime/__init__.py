"""How a job runs: the Snakemake bridge, GPU claims, the resident worker, model loading."""
