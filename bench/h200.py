"""The GPU benchmark: the notebook's recipe against the project's defaults, side by side in one run.

On a GPU machine (no download: a random-weight model of Llama-3-8B's shape is built on the GPU):

    python bench/h200.py --work /tmp/bench --json bench/results/h200.json

(a) a homework-size experiment (50 pairs x 3 epochs), each a whole job in its own process, timed
    from process start to exit: the notebook's recipe (training.recipe homework, backend unsloth:
    4-bit, 2 x 4, gradient checkpointing, paged 8-bit AdamW) against the project's default
    (recipe fast, backend auto), and the default with the reference pass in the loop;
(b) generation of the test prompts + probes (filled up to --prompts with training prompts): the
    notebook's per-prompt loop against the project's batched path;
(c) the peak GPU memory of each.
Prints the ratios; writes every figure to --json.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from train_job import defaults  # noqa: E402

H200_BF16_DENSE_TFLOPS = 989.4  # datasheet, SXM, dense
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "UNSLOTH_DISABLE_STATISTICS": "1",
       "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
           p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}


def say(log, text: str) -> None:
    print(text, flush=True)
    log.write(text + "\n")
    log.flush()


DEADLINE = [float("inf")]  # perf_counter time by which every step must have ended


def run(log, name: str, command: list[str], timeout: int, env: dict | None = None) -> dict:
    """A subprocess, timed from start to exit, its output appended to the log."""
    timeout = min(timeout, DEADLINE[0] - time.perf_counter())
    if timeout < 30:
        say(log, f"\n===== {name}: skipped, the run's time limit is near")
        return {"ok": False, "skipped": True, "wall_s": None}
    say(log, f"\n===== {name}: {' '.join(command)}")
    spawned = time.time()
    start = time.perf_counter()
    try:
        result = subprocess.run(command, env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=timeout, cwd=REPO)
        output, code = result.stdout, result.returncode
    except subprocess.TimeoutExpired as error:
        output, code = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or ""), -9
    wall = time.perf_counter() - start
    log.write(output)
    say(log, f"===== {name}: exit {code} after {wall:.1f} s")
    if code != 0:
        print(output[-4000:], flush=True)
    return {"ok": code == 0, "wall_s": round(wall, 1), "spawned_at": round(spawned, 2)}


def device_ceilings() -> dict:
    """bf16 matrix rate and copy bandwidth, measured (the ceilings MFU and the decode floor refer to)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(50):
        a @ b
    end.record()
    torch.cuda.synchronize()
    tflops = 50 * 2 * 8192**3 / (begin.elapsed_time(end) / 1e3) / 1e12
    src = torch.empty(2**30, device="cuda", dtype=torch.float32)  # 4 GiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    begin.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    bandwidth = 10 * 2 * src.numel() * 4 / (begin.elapsed_time(end) / 1e3) / 1e12
    del a, b, src, dst
    torch.cuda.empty_cache()
    return {"bf16_matmul_tflops": round(tflops, 1), "copy_tb_s": round(bandwidth, 2)}


def write_inputs(work: Path, n_prompts: int) -> tuple[Path, Path]:
    from dpo_study.stages.data import write_jsonl, write_pairs, prompt_records
    from dpo_study.config.data_files import load_rows

    data = defaults("data")
    experiment = defaults("defaults")
    pairs = work / "pairs.jsonl"
    write_pairs(str(REPO / data["train"]), str(pairs),
                {k: experiment[k] for k in ("data_size", "support_ratio", "strategy")}, data["system_prompt"])
    probes = [row for path in data["probes"] for row in load_rows(REPO / path, "probes")]
    records = prompt_records(load_rows(REPO / data["test"], "test"), probes, data["system_prompt"])
    train = load_rows(REPO / data["train"], "train")
    for row in train[: max(0, n_prompts - len(records))]:  # fill up to the size of the full probe suite
        records.append({"id": f"fill-{row['id']}", "set": "fill", "category": "train-prompt",
                        "system": data["system_prompt"], "prompt": row["prompt"]})
    prompts = work / "prompts.jsonl"
    write_jsonl(records, prompts)
    return pairs, prompts


def matmul_params(model_dir: Path) -> int:
    """Parameters that take part in matrix products (all but the input embedding)."""
    from dpo_study.runtime.memory import model_shape

    config = json.loads((model_dir / "config.json").read_text())
    return model_shape(model_dir).params - config["vocab_size"] * config["hidden_size"]


def train_figures(summary: dict, log_csv: Path, step: dict, n_matmul: int, peak_tflops: float) -> dict:
    """In-loop speed and model-FLOP utilisation, and where the job's wall time went.

    Model FLOPs: policy forward + backward (input gradients only: the base is frozen) = 4N a token,
    plus 2N for the reference pass when it runs in the loop; checkpointing's recomputation is not
    model work and is not counted. "steady" leaves out the first epoch, which carries the one-time
    costs (kernel loading, Unsloth's compilation, allocator growth).
    """
    flops_per_token = (4 if summary["plan"]["precompute_ref_logps"] else 6) * n_matmul
    tok_s = summary["tokens"] / summary["train_seconds"]
    steps = pd.read_csv(log_csv)
    later = steps[steps["epoch"] > 1.0 + 1e-9]
    tokens = steps["num_tokens"].diff().fillna(steps["num_tokens"])
    steady_tok_s = tokens[later.index].sum() / later["seconds"].sum()
    return {
        "loop_tok_s": round(tok_s, 1),
        "loop_mfu": round(tok_s * flops_per_token / (peak_tflops * 1e12), 3),
        "steady_loop_tok_s": round(steady_tok_s, 1),
        "steady_loop_mfu": round(steady_tok_s * flops_per_token / (peak_tflops * 1e12), 3),
        "steady_step_s": round(later["seconds"].median(), 3),
        "first_step_s": round(steps["seconds"].iloc[0], 2),
        "flops_per_token": flops_per_token,
        "wall_breakdown_s": {
            "process_start_and_imports": round(summary["started_at"] - step["spawned_at"], 1),
            "load_model": summary["load_seconds"],
            "trainer_setup_and_reference_pass": round(summary["setup_seconds"] - summary["load_seconds"], 1),
            "reference_pass": summary["reference_pass_seconds"],
            "training_loop": summary["train_seconds"],
            "save_and_exit": round(step["spawned_at"] + step["wall_s"] - summary["finished_at"], 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/dpo-bench"))
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/h200.json")
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=70)
    parser.add_argument("--loop-prompts", type=int, default=8)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tiny", action="store_true", help="a small model: a smoke test of this script on a CPU")
    parser.add_argument("--report", type=Path, default=None,
                        help="only recompute the summary keys and table of an earlier run's JSON")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds for the whole run; later steps "
                                                                         "are cut short or skipped")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: homework,auto,auto_ref_in_loop,"
                                                   "gen_loop,gen_project,auto_default_allocator,auto_liger")
    args = parser.parse_args()
    if args.report:
        results = json.loads(args.report.read_text())
        results.update(headline(results))
        args.report.write_text(json.dumps(results, indent=2) + "\n")
        print(table(results))
        return
    if args.time_limit:
        DEADLINE[0] = time.perf_counter() + args.time_limit
    skip = set(filter(None, args.skip.split(",")))
    args.work.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    log = open(args.log or args.work / "bench.log", "a")
    py = sys.executable

    gpu = (f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
           if torch.cuda.is_available() else "no GPU")
    results: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{gpu}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {torch.__version__}",
        "command": "python bench/h200.py " + " ".join(sys.argv[1:]),
    }
    versions = {}
    for package in ("transformers", "trl", "peft", "unsloth", "bitsandbytes", "accelerate", "datasets"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    results["versions"] = versions
    if torch.cuda.is_available():
        results["ceilings"] = device_ceilings()
    say(log, json.dumps(results, indent=2))

    def save():
        args.json.write_text(json.dumps(results, indent=2) + "\n")

    model_dir = args.work / "model"
    manifest = args.work / "model.json"
    if not manifest.exists():
        step = run(log, "build random model", [py, "bench/random_model.py", str(model_dir), "--layers",
                                                str(args.layers), *(["--tiny"] if args.tiny else [])], 900)
        if not step["ok"]:
            save()
            raise SystemExit("could not build the model")
    pairs, prompts = write_inputs(args.work, args.prompts)
    n_matmul = matmul_params(model_dir)
    from dpo_study.runtime.memory import model_shape

    results["model"] = {"params": model_shape(model_dir).params, "matmul_params": n_matmul, "layers": args.layers,
                        "pairs": sum(1 for _ in open(pairs)), "prompts": sum(1 for _ in open(prompts))}

    jobs = {
        "homework": {"recipe": "homework", "backend": "unsloth"},
        "auto": {"recipe": "fast", "backend": "auto"},
        "auto_ref_in_loop": {"recipe": "fast", "backend": "auto", "precompute_ref_logps": False},
        "auto_default_allocator": {"recipe": "fast", "backend": "auto"},
        # Issue 20 item 5: Liger's layer kernels (TRL keeps its own fused LM head), side by side with "auto".
        "auto_liger": {"recipe": "fast", "backend": "auto", "use_liger_kernel": True},
    }
    # PyTorch's default allocator settings (the project's jobs set growable segments; the notebook does not).
    job_env = {name: {"PYTORCH_CUDA_ALLOC_CONF": ""} for name in ("homework", "auto_default_allocator")}
    adapter = args.work / "jobs/auto/adapter"

    def train(name: str, timeout: int = 150) -> None:
        out = args.work / "jobs" / name
        step = run(log, f"train {name}", [py, "bench/train_job.py", str(manifest), str(pairs), str(out),
                                          json.dumps(jobs[name])], timeout, env=job_env.get(name))
        entry = {"overrides": jobs[name], **step}
        if step["ok"]:
            summary = json.loads((out / "train_summary.json").read_text())
            entry.update(summary=summary, **train_figures(summary, out / "train_log.csv", step, n_matmul,
                                                          H200_BF16_DENSE_TFLOPS))
        results[f"train_{name}"] = entry

    def generate_loop() -> None:
        out = args.work / "gen_loop.json"
        step = run(log, "generate: notebook per-prompt loop",
                   [py, "bench/generate_job.py", "loop", str(manifest), str(prompts), str(args.loop_prompts),
                    str(out)], 150)
        results["gen_loop"] = {**step, **(json.loads(out.read_text()) if step["ok"] else {})}

    def generate_project(name: str, settings: str) -> None:
        if not adapter.exists():
            return
        out = args.work / f"{name}.json"
        step = run(log, f"generate: project path ({settings})",
                   [py, "bench/generate_job.py", "project", str(manifest), str(prompts), str(adapter), str(out),
                    settings], 240)
        results[name] = {**step, **(json.loads(out.read_text()) if step["ok"] else {})}

    # Most important first: the run may be cut short by --time-limit.
    steps = {
        "homework": lambda: train("homework", 240),
        "auto": lambda: train("auto"),
        "gen_loop": generate_loop,
        # The job's own decode (auto: a CUDA graph per step), then the same loop without the graph
        # (must give the same answers), then transformers' plain generate.
        # and the job's decode once more, warm (what a job generating several prompt sets would see).
        "gen_project": lambda: generate_project("gen_project", "auto,static,plain,auto"),
        "auto_default_allocator": lambda: train("auto_default_allocator"),
        "auto_ref_in_loop": lambda: train("auto_ref_in_loop"),
        # Triton kernels: a GPU only (the job refuses them on a CPU, naming the setting)
        "auto_liger": lambda: train("auto_liger") if torch.cuda.is_available() else None,
    }
    for name, step in steps.items():
        if name not in skip:
            step()
            save()

    results.update(headline(results))
    save()
    say(log, "\n" + table(results))


def headline(r: dict) -> dict:
    """The issue's keys, from what ran."""
    h = {}
    hw, auto = r.get("train_homework", {}), r.get("train_auto", {})
    if hw.get("ok") and auto.get("ok"):
        h.update(
            homework_job_wall_s=hw["wall_s"], auto_job_wall_s=auto["wall_s"],
            job_speedup=round(hw["wall_s"] / auto["wall_s"], 2),
            homework_loop_tok_s=hw["loop_tok_s"], auto_loop_tok_s=auto["loop_tok_s"],
            loop_speedup=round(auto["loop_tok_s"] / hw["loop_tok_s"], 2),
            homework_loop_mfu=hw["loop_mfu"], auto_loop_mfu=auto["loop_mfu"],
            homework_steady_loop_tok_s=hw["steady_loop_tok_s"], auto_steady_loop_tok_s=auto["steady_loop_tok_s"],
            homework_steady_loop_mfu=hw["steady_loop_mfu"], auto_steady_loop_mfu=auto["steady_loop_mfu"],
            homework_peak_gib=hw["summary"]["peak_memory_gib"], auto_peak_gib=auto["summary"]["peak_memory_gib"],
        )
    later = r.get("train_auto_default_allocator", {})
    if later.get("ok") and "homework_job_wall_s" in h:
        # The same job run later (4th process on the machine: libraries and kernels already in the
        # page cache), with PyTorch's default allocator settings.
        h.update(auto_later_job_wall_s=later["wall_s"],
                 job_speedup_later=round(h["homework_job_wall_s"] / later["wall_s"], 2))
    liger = r.get("train_auto_liger", {})
    if liger.get("ok") and auto.get("ok"):
        h.update(liger_job_wall_s=liger["wall_s"], liger_steady_loop_tok_s=liger["steady_loop_tok_s"],
                 liger_steady_loop_mfu=liger["steady_loop_mfu"], liger_peak_gib=liger["summary"]["peak_memory_gib"],
                 liger_steady_loop_speedup=round(liger["steady_loop_tok_s"] / auto["steady_loop_tok_s"], 3))
    loop, project = r.get("gen_loop", {}), r.get("gen_project", {})
    if loop.get("ok") and project.get("ok"):
        first, warm = project["runs"][0], project["runs"][-1]
        h.update(
            gen_loop_tok_s=loop["tok_s"], gen_project_tok_s=first["tok_s"],
            gen_speedup=round(first["tok_s"] / loop["tok_s"], 1),
            gen_project_warm_tok_s=warm["tok_s"], gen_warm_speedup=round(warm["tok_s"] / loop["tok_s"], 1),
            gen_loop_peak_gib=loop["peak_gib"], gen_project_peak_gib=project["peak_gib"],
        )
    return h


def table(r: dict) -> str:
    lines = ["| measure | notebook recipe | project default | ratio |", "|---|---|---|---|"]

    def row(label, a, b, ratio=None):
        lines.append(f"| {label} | {a} | {b} | {ratio if ratio is not None else ''} |")

    if "job_speedup" in r:
        row("training job wall time, s (50 pairs x 3 epochs)", r["homework_job_wall_s"], r["auto_job_wall_s"],
            f"{r['job_speedup']}x")
        if "auto_later_job_wall_s" in r:
            row("the same, project job run later (warm caches, default allocator)", r["homework_job_wall_s"],
                r["auto_later_job_wall_s"], f"{r['job_speedup_later']}x")
        row("training loop, tokens/s", r["homework_loop_tok_s"], r["auto_loop_tok_s"], f"{r['loop_speedup']}x")
        row("training loop MFU (dense bf16 989 TFLOP/s)", r["homework_loop_mfu"], r["auto_loop_mfu"])
        row("training loop after epoch 1, tokens/s", r["homework_steady_loop_tok_s"], r["auto_steady_loop_tok_s"],
            f"{r['auto_steady_loop_tok_s'] / r['homework_steady_loop_tok_s']:.2f}x")
        row("training loop after epoch 1, MFU", r["homework_steady_loop_mfu"], r["auto_steady_loop_mfu"])
        if "liger_steady_loop_speedup" in r:
            row("the same with Liger's kernels (use_liger_kernel), tokens/s / MFU", "",
                f"{r['liger_steady_loop_tok_s']} / {r['liger_steady_loop_mfu']}",
                f"{r['liger_steady_loop_speedup']}x of the default's")
        row("training peak GPU memory, GiB", r["homework_peak_gib"], r["auto_peak_gib"])
    if "gen_speedup" in r:
        row("generation, tokens/s (first call in the job)", r["gen_loop_tok_s"], r["gen_project_tok_s"],
            f"{r['gen_speedup']}x")
        row("generation, tokens/s (second call)", r["gen_loop_tok_s"], r["gen_project_warm_tok_s"],
            f"{r['gen_warm_speedup']}x")
        row("generation peak GPU memory, GiB", r["gen_loop_peak_gib"], r["gen_project_peak_gib"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
