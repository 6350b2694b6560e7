"""Tests of the ListOps generator: file format, labels, lengths, uniqueness, determinism, errors."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from lra.data.listops_generator import TASK_FOLDER, draw_tree, generate_listops

OPERATORS = {"[MIN", "[MAX", "[MED", "[SM"}
VOCABULARY = {str(digit) for digit in range(10)} | OPERATORS | {"]"}
SMALL = dict(num_train=60, num_val=20, num_test=20, min_length=20, max_length=100)


def tokens_of(source: str) -> list[str]:
    return [token for token in source.split() if token not in ("(", ")")]


def evaluate(source: str) -> int:
    """Stack-based evaluation of a Source string, independent of the generator."""
    frames: list[tuple[str, list[int]]] = []
    result: int | None = None
    for token in tokens_of(source):
        if token in OPERATORS:
            frames.append((token, []))
            continue
        if token == "]":
            operator, args = frames.pop()
            value = {
                "[MIN": lambda: min(args),
                "[MAX": lambda: max(args),
                "[MED": lambda: int(statistics.median(args)),
                "[SM": lambda: sum(args) % 10,
            }[operator]()
        else:
            value = int(token)
        if frames:
            frames[-1][1].append(value)
        else:
            assert result is None, f"two top-level expressions in {source!r}"
            result = value
    assert result is not None and not frames, f"unbalanced expression {source!r}"
    return result


def reference_tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> tuple[object, int]:
    """A direct recursive port of the original generator: nested pairs and their length."""
    r = rng.random() if depth < max_depth else 1
    if r > 0.25:
        return rng.choice(range(10)), 1
    num_args = rng.randint(2, max_args)
    children = [reference_tree(rng, depth + 1, max_depth, max_args) for _ in range(num_args)]
    tree: object = (rng.choice(["[MIN", "[MAX", "[MED", "[SM"]), children[0][0])
    for child, _ in children[1:]:
        tree = (tree, child)
    return (tree, "]"), 2 + sum(length for _, length in children)


def reference_string(tree: object) -> str:
    if isinstance(tree, tuple):
        return "( " + reference_string(tree[0]) + " " + reference_string(tree[1]) + " )"
    return str(tree)


def read_split(data_dir: Path, split: str) -> list[tuple[str, int]]:
    lines = (data_dir / TASK_FOLDER / f"basic_{split}.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "Source\tTarget"
    assert lines[-1] == "", "file must end with a newline"
    rows = []
    for line in lines[1:-1]:
        columns = line.split("\t")
        assert len(columns) == 2, f"expected 2 tab-separated columns, got {line!r}"
        rows.append((columns[0], int(columns[1])))
    return rows


def test_files_have_counts_format_lengths_labels_and_no_duplicates(tmp_path: Path) -> None:
    counts = generate_listops(tmp_path, seed=3, **SMALL)
    assert counts == {"train": 60, "val": 20, "test": 20}
    assert sorted(p.name for p in (tmp_path / TASK_FOLDER).iterdir()) == [
        "basic_test.tsv",
        "basic_train.tsv",
        "basic_val.tsv",
    ]
    plain_file = tmp_path / "plain.txt"
    plain_file.write_text("")
    assert (tmp_path / TASK_FOLDER / "basic_train.tsv").stat().st_mode == plain_file.stat().st_mode
    sources: list[str] = []
    operators_seen: set[str] = set()
    for split, count in counts.items():
        rows = read_split(tmp_path, split)
        assert len(rows) == count
        for source, label in rows:
            tokens = tokens_of(source)
            assert set(tokens) <= VOCABULARY
            assert SMALL["min_length"] < len(tokens) < SMALL["max_length"]
            assert source.startswith("( ") and source.endswith(" ] )")
            assert 0 <= label <= 9
            assert label == evaluate(source), source
            operators_seen |= set(tokens) & OPERATORS
        sources += [source for source, _ in rows]
    assert len(set(sources)) == len(sources)
    assert operators_seen == OPERATORS


def test_benchmark_lengths(tmp_path: Path) -> None:
    counts = generate_listops(tmp_path, num_train=30, num_val=10, num_test=10, seed=1)
    for split in counts:
        for source, label in read_split(tmp_path, split):
            assert 500 < len(tokens_of(source)) < 2000
            assert label == evaluate(source)


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    def contents(folder: str, seed: int) -> list[bytes]:
        generate_listops(tmp_path / folder, seed=seed, **SMALL)
        folder_path = tmp_path / folder / TASK_FOLDER
        return [(folder_path / f"basic_{split}.tsv").read_bytes() for split in ("train", "val", "test")]

    first = contents("a", seed=0)
    assert contents("b", seed=0) == first
    other = contents("c", seed=1)
    assert all(mine != theirs for mine, theirs in zip(first, other))
    # Regenerating over existing files replaces them whole.
    assert contents("a", seed=1) == other


def test_zero_counts_give_header_only_files(tmp_path: Path) -> None:
    counts = generate_listops(tmp_path, num_train=0, num_val=0, num_test=0, min_length=20, max_length=100)
    assert counts == {"train": 0, "val": 0, "test": 0}
    assert all(read_split(tmp_path, split) == [] for split in counts)


def test_draw_tree_matches_the_original_generator() -> None:
    ours, theirs = random.Random(7), random.Random(7)
    for _ in range(300):
        tree, length = reference_tree(theirs, 1, 10, 10)
        source, our_length, label = draw_tree(ours, 10, 10, length_limit=10**9)
        assert (source, our_length) == (reference_string(tree), length)
        assert label == evaluate(source)


@pytest.mark.parametrize("limit", [4, 30, 200])
def test_giving_up_early_only_drops_trees_too_long(limit: int) -> None:
    for seed in range(200):
        full = draw_tree(random.Random(seed), 10, 10, length_limit=10**9)
        limited = draw_tree(random.Random(seed), 10, 10, length_limit=limit)
        assert full is not None
        if full[1] >= limit:
            assert limited is None
        else:
            assert limited == full


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(num_train=-1), "num_train=-1"),
        (dict(num_train=1.5), "num_train=1.5 is not a whole number"),
        (dict(num_val=-5), "num_val=-5"),
        (dict(num_test=-2), "num_test=-2"),
        (dict(min_length=-1), "min_length=-1"),
        (dict(min_length=100, max_length=100), "raise max_length"),
        (dict(min_length=99, max_length=100), "raise max_length"),
        (dict(max_depth=0), "max_depth=0"),
        (dict(max_args=1), "max_args=1"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, arguments: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_listops(tmp_path, **{**SMALL, **arguments})
    assert not (tmp_path / TASK_FOLDER).exists()


def test_impossible_request_stops_with_a_clear_error(tmp_path: Path) -> None:
    # Only single values (10 distinct trees) have a length strictly between 0 and 2.
    with pytest.raises(RuntimeError, match="too few distinct trees"):
        generate_listops(tmp_path, num_train=8, num_val=2, num_test=1, min_length=0, max_length=2)
    assert list((tmp_path / TASK_FOLDER).iterdir()) == [], "no partial or temporary file may remain"
