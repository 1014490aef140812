if MODEL == "demo":
    # Demo-only pretraining text (subject questions, Traditional Chinese), shipped with the package's data.
    DEMO_PRETRAIN = "data/demo_pretrain.json"

    rule build_demo_model:
        input:
            train=config["data"]["train"],
            test=config["data"]["test"],
            pretrain=DEMO_PRETRAIN,
        output:
            model_dir=directory(f"{RESULTS}/models/{STUDY.model_id}"),
            manifest=MODEL_MANIFEST,
        log:
            f"{RESULTS}/logs/build_demo_model.log",
        conda:
            ENV
        threads: 2
        params:
            **STUDY.demo_model_settings,
            system_prompt=STUDY.system_prompt,
            code=code("build_demo_model"),
        script:
            "../scripts/build_demo_model.py"

else:

    # Runs where the job starts (on a cluster: the login node, which has the network).
    localrules:
        resolve_model,

    rule resolve_model:
        output:
            manifest=MODEL_MANIFEST,
        log:
            f"{RESULTS}/logs/resolve_model.log",
        conda:
            ENV
        params:
            name=MODEL,
            code=code("resolve_model"),
        script:
            "../scripts/resolve_model.py"
