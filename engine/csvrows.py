"""CSV files read row by row, with the checks every importer shares."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.errors import FashionrecError

Row = dict[str, str]


def csv_rows(
    path: Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    error: type[FashionrecError] = FashionrecError,
    suffix: str = "",
) -> Iterator[tuple[int, Row | None]]:
    """(line number, row) for each data row; the row is None when its field count is wrong.

    Missing required columns, or text that is not UTF-8, raise `error` naming the file
    (and `suffix`, e.g. "; nothing imported"). Column names are stripped.
    """
    number = 1
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                expected = ",".join(required) + (f"[,{','.join(optional)}]" if optional else "")
                raise error(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {expected}{suffix}"
                )
            reader.fieldnames = columns
            for number, row in enumerate(reader, start=2):
                broken = None in row or any(row.get(c) is None for c in required)
                yield number, None if broken else row
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text after line {number} ({exc.reason}); save it as UTF-8{suffix}"
        ) from None
