"""One atomic write for every file effnet produces: a reader, another process or a crash sees
the old file or the new one, never half of one (checkpoints, journals' state, exports, plots);
and one JSON-lines journal append, where a crash loses at most the line being written.

Written here rather than taken from a library: the few that exist (atomicwrites is
unmaintained) either skip the directory fsync or do not take a writer callback, which
``torch.save``, ``safetensors`` and ``matplotlib`` need."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, make_folder: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is fsynced and renamed
    over ``path``, on any error it is removed. The folder is made if need be, unless
    ``make_folder`` is false (then a missing folder is a FileNotFoundError)."""
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomic(path: str | os.PathLike[str], data: str | bytes | Callable[[Path], object], *,
                 make_folder: bool = True) -> Path:
    """Write text, bytes, or whatever ``data(partial_path)`` writes, atomically to ``path``."""
    path = Path(path)
    with atomic_path(path, make_folder=make_folder) as partial:
        if isinstance(data, str):
            partial.write_text(data)
        elif isinstance(data, bytes):
            partial.write_bytes(data)
        else:
            data(partial)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems refuse to open a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_json_line(path: str | os.PathLike[str], record: dict) -> None:  # type: ignore[type-arg]
    """Append ``record`` as one line of JSON, flushed and synced: a crash loses at most this line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(record, sort_keys=True) + "\n")
        file.flush()
        os.fsync(file.fileno())


def read_json_lines(path: str | os.PathLike[str]) -> list[dict]:  # type: ignore[type-arg]
    """Every record of a JSON-lines journal (none if it does not exist). A torn line (a kill
    mid-write) is skipped with a warning that names it."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            warnings.warn(f"{path}:{number}: unreadable journal line skipped ({error})", stacklevel=2)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
