"""Deterministic re-implementation of the LRA ListOps generator, writing basic_{train,val,test}.tsv."""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

TASK_FOLDER = "listops-1000"
SPLITS = ("train", "val", "test")
HEADER = "Source\tTarget\n"

VALUES = tuple(range(10))
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
# The original draws r = random() and makes a value when r > 0.25, so an operator when r <= 0.25.
OPERATOR_PROBABILITY = 0.25

# Tiny length windows hold few distinct trees; past this many draws in a row without a new
# example the request is taken to be impossible instead of looping forever.
MAX_FRUITLESS_ATTEMPTS = 1_000_000
PROGRESS_BAR_MIN_EXAMPLES = 10_000


def _median(values: list[int]) -> int:
    """int(np.median(values)) of the original; all values are >= 0, so int() is floor."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


APPLY: dict[str, Callable[[list[int]], int]] = {
    "[MIN": min,
    "[MAX": max,
    "[MED": _median,
    "[SM": lambda values: sum(values) % 10,
}


@dataclass
class _OpenOperator:
    """An operator node whose arguments are still being drawn."""

    num_args: int
    values: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)


def _render(operator: str, pieces: list[str]) -> str:
    # The original nests binary pairs: ((((op, a), b), c), END) prints as
    # "( ( ( ( [MAX a ) b ) c ) ] )": one "( " per argument plus one for END.
    return "( " * (len(pieces) + 1) + operator + " " + " ) ".join(pieces) + " ) " + END + " )"


def draw_tree(
    rng: random.Random, max_depth: int, max_args: int, length_limit: int
) -> tuple[str, int, int] | None:
    """Draw one tree as the original does: (source, length, label), or None once length >= length_limit.

    Random numbers are consumed in the original's order (random(), then choice(VALUES) or
    randint(2, max_args), the children, and the operator last), so a tree that is returned is
    the one the original would have drawn from the same state. Giving up early only skips
    trees that would be rejected for length anyway, so accepted trees keep their distribution.
    """
    open_operators: list[_OpenOperator] = []
    # A lower bound on the final length: every argument not yet drawn counts as one value.
    length = 1
    while True:
        depth = len(open_operators) + 1  # the root is at depth 1, as in the original
        if depth < max_depth and rng.random() <= OPERATOR_PROBABILITY:
            num_args = rng.randint(2, max_args)
            length += 1 + num_args  # this node: 1 -> 2 + num_args
            if length >= length_limit:
                return None
            open_operators.append(_OpenOperator(num_args))
            continue
        value = rng.choice(VALUES)
        piece = str(value)
        while open_operators:
            parent = open_operators[-1]
            parent.values.append(value)
            parent.pieces.append(piece)
            if len(parent.values) < parent.num_args:
                break
            open_operators.pop()
            operator = rng.choice(OPERATORS)
            value = APPLY[operator](parent.values)
            piece = _render(operator, parent.pieces)
        if not open_operators:
            return piece, length, value


def _accepted_examples(
    rng: random.Random, min_length: int, max_length: int, max_depth: int, max_args: int
) -> Iterator[tuple[str, int] | None]:
    """Yield (source, label) for each draw with min_length < length < max_length, None for a rejected draw."""
    while True:
        tree = draw_tree(rng, max_depth, max_args, max_length)
        if tree is None or tree[1] <= min_length:
            yield None
        else:
            yield tree[0], tree[2]


def _validate(
    counts: dict[str, int], min_length: int, max_length: int, max_depth: int, max_args: int
) -> None:
    numbers = {f"num_{name}": count for name, count in counts.items()}
    numbers.update(min_length=min_length, max_length=max_length, max_depth=max_depth, max_args=max_args)
    for name, number in numbers.items():
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"{name}={number!r} is not a whole number; pass an int.")
    for name, count in counts.items():
        if count < 0:
            raise ValueError(f"num_{name}={count} is negative; pass a count >= 0.")
    if min_length < 0:
        raise ValueError(f"min_length={min_length} is negative; pass min_length >= 0.")
    if max_length - min_length < 2:
        raise ValueError(
            f"no length fits strictly between min_length={min_length} and max_length={max_length}; "
            "raise max_length to at least min_length + 2 (the benchmark uses 500 and 2000)."
        )
    if max_depth < 1:
        raise ValueError(f"max_depth={max_depth} is below 1; pass max_depth >= 1 (the benchmark uses 10).")
    if max_args < 2:
        raise ValueError(
            f"max_args={max_args} is below 2; operators take 2 or more arguments, pass max_args >= 2."
        )


def _digest(source: str) -> bytes:
    return hashlib.blake2b(source.encode(), digest_size=16).digest()


def _write_splits(
    examples: Iterator[tuple[str, int] | None],
    files: dict[str, str],
    counts: dict[str, int],
    progress: Progress,
) -> None:
    """Fill each split file in turn with unique examples, never repeating a Source across splits."""
    # 16-byte digests instead of the sources themselves: the benchmark's sources take about 650 MB.
    seen: set[bytes] = set()
    task = progress.add_task("ListOps", total=sum(counts.values()))
    for split, count in counts.items():
        with open(files[split], "x", encoding="utf-8", newline="\n") as out:
            out.write(HEADER)
            written = 0
            fruitless = 0
            while written < count:
                example = next(examples)
                digest = b"" if example is None else _digest(example[0])
                if example is None or digest in seen:
                    fruitless += 1
                    if fruitless >= MAX_FRUITLESS_ATTEMPTS:
                        raise RuntimeError(
                            f"no new ListOps example in {fruitless:,} draws after {len(seen):,} unique ones "
                            f"(split '{split}', {written:,} of {count:,} written): this length window holds "
                            "too few distinct trees; widen min_length/max_length or ask for fewer examples."
                        )
                    continue
                seen.add(digest)
                fruitless = 0
                out.write(f"{example[0]}\t{example[1]}\n")
                written += 1
                progress.advance(task)
            out.flush()
            os.fsync(out.fileno())


def generate_listops(
    data_dir: Path,
    *,
    num_train: int = 96_000,
    num_val: int = 2_000,
    num_test: int = 2_000,
    min_length: int = 500,
    max_length: int = 2_000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
) -> dict[str, int]:
    """Write <data_dir>/listops-1000/basic_{train,val,test}.tsv and return the number of rows per split.

    Trees are kept when min_length < length < max_length (length = values + 2 per operator) and
    no Source appears twice across the three files. The same arguments give identical files.
    """
    counts = {"train": num_train, "val": num_val, "test": num_test}
    _validate(counts, min_length, max_length, max_depth, max_args)
    out_dir = Path(data_dir) / TASK_FOLDER
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = _accepted_examples(random.Random(seed), min_length, max_length, max_depth, max_args)
    # Unique names opened with mode "x" (not mkstemp) so the files get the usual umask permissions.
    temporary = {split: str(out_dir / f".basic_{split}.{uuid.uuid4().hex}.tmp") for split in SPLITS}
    try:
        with Progress(transient=True, disable=sum(counts.values()) < PROGRESS_BAR_MIN_EXAMPLES) as progress:
            _write_splits(examples, temporary, counts, progress)
        for split in SPLITS:
            os.replace(temporary.pop(split), out_dir / f"basic_{split}.tsv")
    finally:
        for leftover in temporary.values():
            Path(leftover).unlink(missing_ok=True)
    return counts
