"""Atomic file writes: write to a temporary name in the same folder, fsync, rename.

A reader never sees a partial file, and a failed or killed write leaves the previous
file (if any) intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowless.errors import FlowlessError

# errno values that mean "this place cannot take the file", not "the program is wrong"
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOTDIR, errno.ENOENT, errno.EISDIR, errno.EEXIST}


def _cannot_write(where: Path, exc: OSError) -> FlowlessError:
    reason = exc.strerror or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]  # "permission denied", "no space left on device"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free disk space (or choose another output folder) and rerun"
    else:
        fix = "choose a writable output folder"
    return FlowlessError(f"{where}: cannot write here ({reason}); {fix}")


def writable_dir(path: str | Path) -> Path:
    """Create folder ``path`` if needed and check a file can be written there.

    Call it before long work so an unwritable output folder (a parent that is a file, a
    read-only or full disk) is a one-line user error at once, not a crash at the end.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    return path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    ``suffix`` is kept on the temporary name so libraries that pick a format from the
    extension (e.g. ``np.save``, PyAV) still work. Whatever fails (a full disk, a kill),
    the previous ``path`` is untouched and the temporary file is removed; a folder that
    cannot take the file, or a full disk, is a one-line :class:`FlowlessError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path.parent, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; results get the usual mode
    try:
        yield tmp_path
        try:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            raise _cannot_write(path, exc) from exc
    except OSError as exc:  # raised while writing the temporary file
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _cannot_write(path, exc) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line (``json_stats`` style log) and flush it to disk."""
    path = Path(path)
    line = json.dumps(obj, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise _cannot_write(path, exc) from exc
