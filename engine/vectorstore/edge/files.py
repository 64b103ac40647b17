"""The shard's files copied and archived with their holes: Qdrant Edge preallocates files
(32 MB write-ahead logs and storage pages) that it fills slowly, so a copy that reads them
whole writes out tens of megabytes of zeros per file (a 30-item store: 1 MB on disk, 241 MB
read whole)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

CHUNK: Final = 1 << 20  # bytes per read/write of a data extent


def extents(path: Path | str) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of data in a file, in order; the holes between are zeros
    (a file system that cannot tell holes gives one run, the whole file)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(handle.fileno(), position, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after position
                return
            end = os.lseek(handle.fileno(), start, os.SEEK_HOLE)
            yield start, end
            position = end


def data_end(path: Path | str) -> int:
    """Where a file's last run of data ends (0 for a file of holes)."""
    return max((end for _, end in extents(path)), default=0)


def copy_sparse(source: str, target: str, *, follow_symlinks: bool = True) -> str:
    """Copy a file's data runs only, then give the copy the source's size: its holes stay
    holes. Signature of shutil.copy2, whose metadata it keeps."""
    with open(source, "rb") as reading, open(target, "wb") as writing:
        for start, end in extents(source):
            reading.seek(start)
            writing.seek(start)
            remaining = end - start
            while remaining:
                chunk = reading.read(min(CHUNK, remaining))
                if not chunk:
                    break
                writing.write(chunk)
                remaining -= len(chunk)
        writing.truncate(os.fstat(reading.fileno()).st_size)
    shutil.copystat(source, target, follow_symlinks=follow_symlinks)
    return target


def copy_tree(
    source: Path, target: Path, ignore: Callable[[Any, list[str]], set[str]] | None = None
) -> Path:
    """shutil.copytree, keeping every file's holes."""
    return Path(shutil.copytree(source, target, ignore=ignore, copy_function=copy_sparse))
