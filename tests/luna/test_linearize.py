"""luna.linearize on tiny random BERT and ViT models: layers swapped, softmax exact, padding, training."""

from __future__ import annotations

import copy
import subprocess
import sys
from functools import partial

import pytest
import torch

transformers = pytest.importorskip("transformers")

from luna import LinearAttention, LunaAttention, PerformerAttention, SoftmaxAttention  # noqa: E402
from luna.hf_attention import IMPLEMENTATION, key_padding_from_mask  # noqa: E402
from luna.linearize import (  # noqa: E402
    BACKENDS,
    attention_backends,
    attention_transfer,
    backend_parameters,
    linearize,
)

LAYERS, HEADS, DIM, VOCAB = 3, 4, 32, 64
BACKEND_CLASSES = {
    "softmax": SoftmaxAttention,
    "linear": LinearAttention,
    "performer": PerformerAttention,
    "luna": LunaAttention,
}


def tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * DIM,
        max_position_embeddings=32,
        num_labels=3,
    )
    return transformers.BertForSequenceClassification(config).eval()


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=DIM,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * DIM,
        num_labels=3,
    )
    return transformers.ViTForImageClassification(config).eval()


def sentences() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sentences, the second padded after 5 of its 12 tokens with arbitrary token ids."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, VOCAB, (2, 12), generator=generator)
    attention_mask = torch.ones(2, 12, dtype=torch.long)
    attention_mask[1, 5:] = 0
    return input_ids, attention_mask


def images() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("build", [tiny_bert, tiny_vit], ids=["bert", "vit"])
def test_every_layer_gets_its_own_backend(build, name):
    model = linearize(build(), name)
    backends = attention_backends(model)
    assert len(backends) == LAYERS
    assert len({id(b) for b in backends}) == LAYERS
    assert all(type(b) is BACKEND_CLASSES[name] for b in backends)
    assert all((b.head_dim, b.num_heads) == (DIM // HEADS, HEADS) for b in backends)
    assert model.config._attn_implementation == IMPLEMENTATION


def test_softmax_reproduces_bert_with_padding():
    original = tiny_bert()
    converted = linearize(copy.deepcopy(original), "softmax")
    input_ids, attention_mask = sentences()
    with torch.no_grad():
        expected = original(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        got = converted(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-6)
    real = attention_mask.bool()
    torch.testing.assert_close(
        got.hidden_states[-1][real], expected.hidden_states[-1][real], rtol=1e-5, atol=1e-6
    )


def test_softmax_reproduces_vit():
    original = tiny_vit()
    converted = linearize(copy.deepcopy(original), "softmax")
    with torch.no_grad():
        torch.testing.assert_close(
            converted(pixel_values=images()).logits,
            original(pixel_values=images()).logits,
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("name", ["linear", "performer", "luna"])
def test_linear_backends_change_the_outputs(name):
    # Guards against a backend that is installed but never called.
    original = tiny_bert()
    converted = linearize(copy.deepcopy(original), name)
    input_ids, _ = sentences()
    with torch.no_grad():
        difference = (
            (converted(input_ids=input_ids).logits - original(input_ids=input_ids).logits).abs().max()
        )
    assert difference > 1e-6


@pytest.mark.parametrize("name", BACKENDS)
def test_padded_sentence_equals_sentence_alone(name):
    model = linearize(tiny_bert(), name)
    input_ids, attention_mask = sentences()
    with torch.no_grad():
        padded = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[1, :5]
        alone = model.bert(input_ids=input_ids[1:, :5]).last_hidden_state[0]
        garbage = input_ids.clone()
        garbage[1, 5:] = torch.arange(7) + 3  # other tokens in the padding change nothing
        regarbled = model.bert(input_ids=garbage, attention_mask=attention_mask).last_hidden_state[1, :5]
    torch.testing.assert_close(padded, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(regarbled, padded, rtol=1e-5, atol=1e-6)


def test_key_padding_from_every_mask_format():
    real = torch.tensor([[True, True, True], [True, True, False]])
    as_bool = real[:, None, None, :].expand(2, 1, 3, 3)
    additive = torch.zeros(2, 1, 3, 3).masked_fill(~as_bool, torch.finfo(torch.float32).min)
    legacy = (1.0 - real[:, None, None, :].float()) * -10000.0  # (B, 1, 1, N), older versions
    for mask in (as_bool, additive, legacy):
        assert torch.equal(key_padding_from_mask(mask, 3), real)
    assert key_padding_from_mask(None, 3) is None
    assert key_padding_from_mask(torch.ones(2, 1, 3, 3, dtype=torch.bool), 3) is None


def test_backend_options_reach_the_backend_and_typos_fail():
    model = linearize(tiny_bert(), "performer", num_features=24)
    assert all(b.phi.num_features == 24 for b in attention_backends(model))
    model = linearize(tiny_bert(), partial(LunaAttention, num_projections=4, num_channels=2))
    assert all(b.phi.num_features == 8 for b in attention_backends(model))
    with pytest.raises(TypeError):
        linearize(tiny_bert(), "luna", num_projection=4)


def test_decoders_are_refused():
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=DIM, num_hidden_layers=1, num_attention_heads=HEADS, is_decoder=True
    )
    with pytest.raises(ValueError, match="encoders only"):
        linearize(transformers.BertModel(config), "luna")


def test_backends_travel_in_the_state_dict():
    model = linearize(tiny_bert(), "luna")
    assert any("attention_backend" in key for key in model.state_dict())
    with torch.no_grad():
        for parameter in backend_parameters(model):
            parameter.add_(0.1)
    restored = linearize(tiny_bert(), "luna")
    restored.load_state_dict(model.state_dict())
    input_ids, attention_mask = sentences()
    with torch.no_grad():
        torch.testing.assert_close(
            restored(input_ids=input_ids, attention_mask=attention_mask).logits,
            model(input_ids=input_ids, attention_mask=attention_mask).logits,
        )


@pytest.mark.parametrize("build", [tiny_bert, tiny_vit], ids=["bert", "vit"])
def test_gradients_reach_the_new_parameters(build):
    model = linearize(build(), "luna")
    inputs = (
        {"pixel_values": images()}
        if build is tiny_vit
        else dict(zip(("input_ids", "attention_mask"), sentences()))
    )
    model(**inputs, labels=torch.tensor([0, 2])).loss.backward()
    parameters = backend_parameters(model)
    assert len(parameters) == LAYERS * len(list(LunaAttention(8, 4).parameters()))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in parameters)
    assert all(p.grad.abs().sum() > 0 for b in attention_backends(model) for p in (b.phi.weight,))


def test_under_transfer_the_model_computes_as_the_original():
    original = tiny_bert()
    converted = linearize(copy.deepcopy(original), "luna")
    input_ids, attention_mask = sentences()
    with torch.no_grad(), attention_transfer(converted) as losses:
        got = converted(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(got, original(input_ids=input_ids, attention_mask=attention_mask).logits)
    assert len(losses) == LAYERS and all(loss > 0 for loss in losses)
    assert not any(b._forward_hooks for b in attention_backends(converted))  # hooks removed on exit


def test_a_few_distillation_steps_reduce_the_transfer_loss():
    torch.manual_seed(0)
    model = linearize(tiny_bert(), "luna")
    input_ids, attention_mask = sentences()
    optimizer = torch.optim.Adam(backend_parameters(model), lr=1e-2)
    history = []
    for _ in range(15):
        with attention_transfer(model) as losses:
            model(input_ids=input_ids, attention_mask=attention_mask)
        loss = torch.stack(losses).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.7 * history[0]


def test_importing_luna_does_not_import_transformers():
    code = "import sys, luna; assert 'transformers' not in sys.modules; assert callable(luna.linearize)"
    subprocess.run([sys.executable, "-c", code], check=True)
