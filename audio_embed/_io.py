"""All-or-nothing file writes: a temporary file in the target's folder, then a rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from audio_embed.errors import AudioEmbedError

__all__ = ["atomic_writer", "check_output_file", "check_output_folder", "writer_lock"]

#: Seconds a writer waits for another one's lock (a store or index) before giving up.
LOCK_TIMEOUT = 600.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, text: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    On any error (a full disk, a cancellation) the temporary file is removed and
    ``path`` keeps its previous content. The file gets the permissions an
    ordinary ``open()`` would give it (``0o666`` less the umask).

    Text is UTF-8; a file name that is not (bytes Python holds as surrogates, e.g.
    a Latin-1 ``caf\\xe9.wav`` on Linux) is written as its own bytes, so the text
    names the file as the system does (before: ``UnicodeEncodeError``, which stopped
    a batch scan).
    """
    target = Path(path)
    if target.is_dir():  # else the error names the temporary file, after all the work
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
    try:
        opened = (
            os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="")
            if text
            else os.fdopen(fd, "wb")
        )
        with opened as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writable_ancestor(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (made if missing), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_output_file(path: str | os.PathLike[str], example: str = "name") -> None:
    """Refuse, before any work, an output file that cannot be written: ``path`` is a
    folder, or its folder cannot be made or written to. ``example``: a file name the
    message suggests inside a folder given by mistake.

    Raises:
        InvalidInputError: saying which, and what to give instead.
    """
    from audio_embed.errors import InvalidInputError

    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(
            f"{target} is a folder; name the file to write (e.g. {target / example})."
        )
    problem = _writable_ancestor(target.parent)
    if problem:
        raise InvalidInputError(f"Cannot write {target}: {problem}.")


def check_output_folder(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output folder that is an existing file or cannot be
    made or written to.

    Raises:
        InvalidInputError: saying which.
    """
    from audio_embed.errors import InvalidInputError

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(
            f"The output folder {folder} is an existing file; results are written one per "
            "input into a folder: name a folder."
        )
    problem = _writable_ancestor(folder)
    if problem:
        raise InvalidInputError(f"Cannot write results into {folder}: {problem}.")


@contextlib.contextmanager
def writer_lock(path: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` (``filelock``) while writing ``what``: one writer at a
    time, threads or processes. Says so when another holds it, and raises
    :class:`AudioEmbedError` naming the file after ``timeout`` seconds (default
    ``LOCK_TIMEOUT``) rather than wait for ever on a stopped writer."""
    import logging

    from filelock import FileLock, Timeout

    lock = FileLock(path)
    try:
        lock.acquire(timeout=1.0)
    except Timeout:
        limit = LOCK_TIMEOUT if timeout is None else timeout
        logging.getLogger("audio_embed").warning(
            "Waiting for %s: another process is writing %s (up to %g s).", path, what, limit
        )
        try:
            lock.acquire(timeout=limit)
        except Timeout:
            raise AudioEmbedError(
                f"{path} is still held by another process after {limit:g} s: it is writing "
                f"{what}, or it stopped without letting go. Try again when it is done; if no "
                "audio-embed process is running, delete the lock file."
            ) from None
    try:
        yield
    finally:
        lock.release()
