"""Property-based tests of the tokenisers and of ListOps in the release's parenthesised format."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lra.data.layout import DataError
from lra.data.listops_generator import APPLY, _render
from lra.data.tokenizers import (
    LISTOPS_SYMBOLS,
    LISTOPS_VOCAB,
    decode_pixels,
    encode_bytes,
    encode_listops,
)
from tests.data.fixtures import png_bytes

DETERMINISTIC = settings(derandomize=True, max_examples=200, deadline=None)
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")


@dataclass(frozen=True)
class Node:
    operator: str
    arguments: tuple[Node | int, ...]


def value_of(tree: Node | int) -> int:
    """The tree's value, computed directly from the tree."""
    if isinstance(tree, int):
        return tree
    values = sorted(value_of(argument) for argument in tree.arguments)
    if tree.operator == "[MIN":
        return values[0]
    if tree.operator == "[MAX":
        return values[-1]
    if tree.operator == "[SM":
        return sum(values) % 10
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) // 2


def release_format(tree: Node | int) -> str:
    """`[MAX a b c ]` written as the release writes it: `( ( ( ( [MAX a ) b ) c ) ] )`."""
    if isinstance(tree, int):
        return str(tree)
    text = "( " * (len(tree.arguments) + 1) + tree.operator
    for argument in tree.arguments:
        text += f" {release_format(argument)} )"
    return text + " ] )"


def evaluate_tokens(ids: np.ndarray) -> int:
    """Evaluate a token-id sequence with a stack, the way a model must read it."""
    symbols = {index: symbol for symbol, index in LISTOPS_VOCAB.items()}
    stack: list[list] = [[]]
    for symbol in (symbols[int(index)] for index in ids):
        if symbol in OPERATORS:
            stack.append([symbol])
        elif symbol == "]":
            operator, *values = stack.pop()
            stack[-1].append(APPLY[operator](values))
        else:
            stack[-1].append(int(symbol))
    (value,) = stack[0]
    return value


trees = st.recursive(
    st.integers(0, 9),
    lambda children: st.builds(
        Node, st.sampled_from(OPERATORS), st.lists(children, min_size=2, max_size=10).map(tuple)
    ),
    max_leaves=60,
)


@DETERMINISTIC
@given(trees)
def test_listops_tokens_evaluate_to_the_trees_value(tree: Node | int) -> None:
    source = release_format(tree)
    ids = encode_listops(source, "generated")
    assert evaluate_tokens(ids) == value_of(tree)
    # Parentheses are dropped and nothing else: one token per value, operator and "]".
    assert len(ids) == len([token for token in source.split() if token not in "()"])
    assert ids.dtype == np.uint8 and ids.min() >= 1 and ids.max() <= len(LISTOPS_SYMBOLS)


@DETERMINISTIC
@given(trees.filter(lambda tree: isinstance(tree, Node)))
def test_the_generators_writer_uses_the_same_format(tree: Node) -> None:
    def render(node: Node | int) -> str:
        if isinstance(node, int):
            return str(node)
        return _render(node.operator, [render(argument) for argument in node.arguments])

    assert render(tree) == release_format(tree)


@DETERMINISTIC
@given(st.lists(st.sampled_from(LISTOPS_SYMBOLS + ("(", ")")), max_size=50), st.text(min_size=1, max_size=5))
def test_listops_rejects_any_unknown_token_and_names_it(tokens: list[str], stray: str) -> None:
    source = " ".join(tokens)
    assert len(encode_listops(source, "here")) == sum(token not in "()" for token in tokens)
    if stray.split() and not set(stray.split()) <= set(LISTOPS_SYMBOLS + ("(", ")")):
        with pytest.raises(DataError, match="here: unknown ListOps token"):
            encode_listops(f"{source} {stray}", "here")


@DETERMINISTIC
@given(st.binary(max_size=300), st.integers(1, 400))
def test_bytes_round_trip_and_truncation(data: bytes, max_length: int) -> None:
    ids, truncated = encode_bytes(data, max_length)
    assert truncated == (len(data) > max_length)
    assert bytes((ids - 1).astype(np.uint8).tolist()) == data[:max_length]
    assert ids.min(initial=1) >= 1 and ids.max(initial=256) <= 256  # 0 stays free for padding


@DETERMINISTIC
@given(st.text(max_size=100))
def test_utf8_text_round_trips_through_byte_ids(text: str) -> None:
    ids, _ = encode_bytes(text.encode("utf-8"), 10_000)
    assert bytes((ids - 1).astype(np.uint8).tolist()).decode("utf-8") == text


@settings(derandomize=True, max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_pixels_round_trip_through_png(seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8), dtype=np.uint8)
    assert decode_pixels(png_bytes(pixels), 8, "generated").tolist() == pixels.reshape(-1).tolist()
