if MODEL == "demo":
    # Demo-only pretraining text (subject questions, Traditional Chinese; src/dpo_study/stages/demo_pretrain.py),
    # part of the workflow like its code: the checkout's file, whatever the working directory.
    DEMO_PRETRAIN = str(Path(workflow.basedir, "data/demo_pretrain.json"))

    rule build_demo_model:
        input:
            train=STUDY.train_data,
            test=STUDY.test_data,
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
            settings=STUDY.demo_model_settings.to_dict(),
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
