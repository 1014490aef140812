rule train_adapter:
    input:
        manifest=MODEL_MANIFEST,
        pairs=pairs_file,
        train_rows=STUDY.train_data,
    output:
        adapter=directory(f"{RUN}/adapter"),
        train_log=f"{RUN}/train_log.csv",
        summary=f"{RUN}/train_summary.json",
    log:
        f"{RESULTS}/logs/train_adapter/{{key}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        checkpoints=checkpoint_dir,
        experiment=experiment_params,
        training=STUDY.training_settings.to_dict(),
        model_settings=STUDY.model_settings.to_dict(),
        code=code("train_adapter"),
    script:
        "../scripts/train_adapter.py"
