"""CSV files read row by row, with the checks every importer shares."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from engine.errors import FashionrecError

Row = dict[str, str]
SEPARATORS: Final = (",", ";", "\t")


def csv_rows(
    path: Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    error: type[FashionrecError] = FashionrecError,
    suffix: str = "",
    data: bytes | None = None,
) -> Iterator[tuple[int, Row | None]]:
    """(line number, row) for each data row; the row is None when its field count is wrong.

    Files as spreadsheets write them are read: a UTF-8 byte-order mark is skipped, and
    the separator (`,` `;` or tab) is the one the header uses. Missing required columns,
    or text that is not UTF-8, raise `error` naming the file (and `suffix`, e.g.
    "; nothing imported"). Column names are stripped. `data`: the file's bytes, read
    already (e.g. an upload named `path`).
    """
    number = 1
    try:
        raw = path.open("rb") if data is None else io.BytesIO(data)
        with io.TextIOWrapper(raw, newline="", encoding="utf-8-sig") as handle:
            header = handle.readline()
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=separator(header))
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in required if c not in columns]
            if missing:
                expected = ",".join(required) + (f"[,{','.join(optional)}]" if optional else "")
                found = ",".join(columns) or "nothing"
                raise error(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {expected}, "
                    f"found {found}{suffix}"
                )
            reader.fieldnames = columns
            for number, row in enumerate(reader, start=2):
                broken = None in row or any(row.get(c) is None for c in required)
                yield number, None if broken else row
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text after line {number} ({exc.reason}); save it as UTF-8{suffix}"
        ) from None


def separator(header: str) -> str:
    """The separator a header line uses: the most frequent of `,` `;` and tab (`,` on ties)."""
    return max(SEPARATORS, key=lambda s: (header.count(s), s == ","))
