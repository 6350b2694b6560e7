"""Strict reading of the release's TSV files: every bad row is an error naming file and line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from lra.data.layout import DataError


def iter_tsv_rows(
    path: Path, num_columns: int, *, header: Sequence[str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Yield ("file:line", fields) for each non-blank row, skipping the header line if it matches."""
    with path.open("rb") as file:
        for line_number, raw in enumerate(file, start=1):
            where = f"{path}:{line_number}"
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{where}: byte {line[error.start : error.start + 1]!r} at column {error.start + 1} "
                    "is not valid UTF-8. Re-download or regenerate the file."
                ) from None
            fields = text.split("\t")
            if line_number == 1 and header is not None and fields == list(header):
                continue
            if len(fields) != num_columns:
                raise DataError(
                    f"{where}: expected {num_columns} tab-separated columns, found {len(fields)}. "
                    "Re-download or regenerate the file."
                )
            yield where, fields


def parse_label(text: str, num_classes: int, where: str, *, via_float: bool = False) -> int:
    """A class index in [0, num_classes); via_float accepts '1.0' as the Retrieval release writes."""
    try:
        value = float(text) if via_float else int(text)
    except ValueError:
        raise DataError(f"{where}: label {text!r} is not a number") from None
    if not float(value).is_integer() or not 0 <= int(value) < num_classes:
        raise DataError(
            f"{where}: label {text!r} is out of range; expected an integer in 0..{num_classes - 1}"
        )
    return int(value)
