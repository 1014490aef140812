# What a student hands in and a researcher reads: comparison tables, plots and findings, all from
# the study tables. `snakemake --report results/report.html` gathers them with their captions.


report: "../report/workflow.rst"


rule summary_table:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
    output:
        summary_csv=f"{RESULTS}/report/experiments_summary.csv",
        summary_html=report(
            f"{RESULTS}/report/experiments_summary.html",
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/report/summary_table.log",
    conda:
        ENV
    params:
        code=code("write_summary_table"),
    script:
        "../scripts/write_summary_table.py"


rule question_tables:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
        responses=f"{RESULTS}/tables/responses.csv",
    output:
        questions_dir=report(
            directory(f"{RESULTS}/report/questions"),
            patterns=["{question}.html"],
            caption="../report/questions.rst",
            category="Questions",
            labels={"question": "{question}"},
        ),
    log:
        f"{RESULTS}/logs/report/question_tables.log",
    conda:
        ENV
    params:
        questions=STUDY.questions,
        code=code("write_question_tables"),
    script:
        "../scripts/write_question_tables.py"


rule sweep_tables:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
    output:
        sweeps_dir=report(
            directory(f"{RESULTS}/report/sweeps"),
            patterns=["{parameter}.html"],
            caption="../report/sweep_tables.rst",
            category="Sweeps",
            subcategory="Tables",
            labels={"parameter": "{parameter}"},
        ),
    log:
        f"{RESULTS}/logs/report/sweep_tables.log",
    conda:
        ENV
    params:
        code=code("write_sweep_tables"),
    script:
        "../scripts/write_sweep_tables.py"


rule response_tables:
    input:
        responses=f"{RESULTS}/tables/responses.csv",
    output:
        responses_dir=report(
            directory(f"{RESULTS}/report/responses"),
            patterns=["{experiment}.html"],
            caption="../report/response_tables.rst",
            category="Responses",
            labels={"experiment": "{experiment}"},
        ),
    log:
        f"{RESULTS}/logs/report/response_tables.log",
    conda:
        ENV
    params:
        code=code("write_response_tables"),
    script:
        "../scripts/write_response_tables.py"


rule training_curves:
    input:
        train_logs=STUDY.run_files("train_log.csv"),
    output:
        training_dir=report(
            directory(f"{RESULTS}/report/plots/training"),
            patterns=["{experiment}.png"],
            caption="../report/training_curves.rst",
            category="Training curves",
            labels={"experiment": "{experiment}"},
        ),
    log:
        f"{RESULTS}/logs/report/training_curves.log",
    conda:
        ENV
    params:
        experiments=STUDY.experiment_records(),
        code=code("plot_training_curves"),
    script:
        "../scripts/plot_training_curves.py"


rule sweep_plots:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
        responses=f"{RESULTS}/tables/responses.csv",
    output:
        sweeps_dir=report(
            directory(f"{RESULTS}/report/plots/sweeps"),
            patterns=["support_rate_vs_{parameter}.png"],
            caption="../report/sweep_plots.rst",
            category="Sweeps",
            subcategory="Plots",
            labels={"parameter": "{parameter}"},
        ),
    log:
        f"{RESULTS}/logs/report/sweep_plots.log",
    conda:
        ENV
    params:
        code=code("plot_sweeps"),
    script:
        "../scripts/plot_sweeps.py"


rule length_plot:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
    output:
        length_plot=report(
            f"{RESULTS}/report/plots/length_vs_epochs.png",
            caption="../report/length_plot.rst",
            category="Plots",
        ),
    log:
        f"{RESULTS}/logs/report/length_plot.log",
    conda:
        ENV
    params:
        code=code("plot_length_vs_epochs"),
    script:
        "../scripts/plot_length_vs_epochs.py"


rule stance_heatmap:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
        responses=f"{RESULTS}/tables/responses.csv",
    output:
        heatmap=report(
            f"{RESULTS}/report/plots/stance_shift_heatmap.png",
            caption="../report/stance_heatmap.rst",
            category="Plots",
        ),
    log:
        f"{RESULTS}/logs/report/stance_heatmap.log",
    conda:
        ENV
    params:
        code=code("plot_stance_heatmap"),
    script:
        "../scripts/plot_stance_heatmap.py"


rule findings:
    input:
        experiments=f"{RESULTS}/tables/experiments.csv",
        responses=f"{RESULTS}/tables/responses.csv",
        judge_accuracy=STUDY.judge_accuracies(),
    output:
        findings_md=f"{RESULTS}/findings.md",
        findings_zh=f"{RESULTS}/findings.zh-Hant.md",
        findings_html=report(
            f"{RESULTS}/report/findings.html",
            caption="../report/findings.rst",
            category="Findings",
        ),
    log:
        f"{RESULTS}/logs/report/findings.log",
    conda:
        ENV
    params:
        questions=STUDY.questions,
        code=code("write_findings"),
    script:
        "../scripts/write_findings.py"
