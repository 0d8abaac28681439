"""A folder of trained scanners, by profile and embedder, with version history.

Layout::

    DIR/profile_EMBEDDER.scanner                     the current version
    DIR/versions/profile_EMBEDDER/20261124T101500123456.scanner   earlier ones

Saving a scanner under a name that exists first moves the current file into
``versions/`` (stamped with its modification time, UTC), so nothing is lost;
:meth:`ScannerStore.restore` brings an earlier version back (keeping the one it
replaces as a version too).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path

from attrs import frozen

from audio_embed._io import atomic_writer, writer_lock
from audio_embed.errors import InvalidInputError, ScannerFileError
from audio_embed.scanner import Scanner

__all__ = ["ScannerStore", "StoredScanner"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
#: A plain file name (matched whole): an embedder's name (``HUBERT_BASE_ML``) or a
#: version's (``20261124T101500123456``, ``-1`` added when two share a time, as
#: :meth:`ScannerStore._archive` writes them): never a path separator or a leading dot.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SUFFIX = ".scanner"


@frozen
class StoredScanner:
    """One entry of :meth:`ScannerStore.list`."""

    profile: str
    embedder: str
    path: Path
    versions: tuple[str, ...]


class ScannerStore:
    """Keep trained scanners in ``directory`` as ``profile_EMBEDDER`` with history."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @staticmethod
    def _key(profile: str, embedder: str) -> str:
        if not _NAME.fullmatch(profile):
            raise InvalidInputError(
                f"A profile name may hold letters, digits, '.' and '-' only. Got {profile!r}."
            )
        if not _PLAIN.fullmatch(embedder):  # its name is part of a path: never "../x"
            raise InvalidInputError(
                f"An embedder name in a scanner store may hold letters, digits, '_', '.' and "
                f"'-' only. Got {embedder!r}."
            )
        return f"{profile}_{embedder.upper()}"

    def path(self, profile: str, embedder: str) -> Path:
        return self.directory / f"{self._key(profile, embedder)}{SUFFIX}"

    def _versions_dir(self, profile: str, embedder: str) -> Path:
        return self.directory / "versions" / self._key(profile, embedder)

    def _archive(self, current: Path, profile: str, embedder: str) -> None:
        vdir = self._versions_dir(profile, embedder)
        vdir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(current.stat().st_mtime, tz=timezone.utc)
        name = stamp.strftime("%Y%m%dT%H%M%S%f")
        target = vdir / f"{name}{SUFFIX}"
        n = 1
        while target.exists():
            target = vdir / f"{name}-{n}{SUFFIX}"
            n += 1
        # all or nothing, as every other file: a full disk mid-copy leaves no damaged
        # version behind (shutil.copy2 did)
        with atomic_writer(target) as fh, current.open("rb") as src:
            shutil.copyfileobj(src, fh)
        st = current.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _lock(self) -> AbstractContextManager[None]:
        """One writer at a time (threads or processes): two saves that both archived
        the same current file and then replaced it lost the first one's scanner."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return writer_lock(self.directory / ".lock", f"the scanner store {self.directory}")

    def save(self, scanner: Scanner, profile: str) -> Path:
        """Save ``scanner`` as the current version of ``profile``; returns its path.

        Saves from several threads or processes at once each keep their scanner:
        one becomes current, the others versions.
        """
        path = self.path(profile, scanner.embedder.name)
        with self._lock():
            if path.exists():
                self._archive(path, profile, scanner.embedder.name)
            return scanner.save(path)

    def load(self, profile: str, embedder: str, **kwargs: object) -> Scanner:
        """Load the current version (``kwargs`` go to :meth:`Scanner.load`)."""
        path = self.path(profile, embedder)
        if not path.exists():
            raise self.missing(profile, embedder)
        return Scanner.load(path, **kwargs)  # type: ignore[arg-type]

    def missing(self, profile: str, embedder: str | None = None) -> ScannerFileError:
        """The error for a profile (with ``embedder``, or with any) the store does not
        hold: it names the scanners it holds, or that the folder is not there."""
        with_model = f" with {embedder.upper()}" if embedder else ""
        if not self.directory.is_dir():
            held = f"{self.directory} is not a folder (a typing error in --store?)"
        else:
            known = ", ".join(f"{e.profile} ({e.embedder})" for e in self.list()) or "none"
            held = f"Stored: {known}"
        return ScannerFileError(
            f"No scanner for profile {profile!r}{with_model} in {self.directory}. {held}."
        )

    def versions(self, profile: str, embedder: str) -> list[str]:
        """Earlier versions, oldest first (names to pass to :meth:`restore`)."""
        vdir = self._versions_dir(profile, embedder)
        names = (p.name[: -len(SUFFIX)] for p in vdir.glob(f"*{SUFFIX}") if p.is_file())
        # not the temporary file of a copy that was stopped (".tmp-…", half written)
        return sorted(n for n in names if _PLAIN.fullmatch(n))

    def restore(self, profile: str, embedder: str, version: str) -> Path:
        """Make ``version`` current again; the current one is kept as a version.

        ``version`` is one of the names :meth:`versions` lists: a name that is not a
        plain file name (``../x``, ``a/b``) is an :class:`InvalidInputError`, one that is
        not listed a :class:`ScannerFileError`.
        """
        if not isinstance(version, str) or not _PLAIN.fullmatch(version):
            raise InvalidInputError(
                f"A version of a stored scanner is one of the names ScannerStore.versions "
                f"lists (e.g. 20261124T101500123456), not a path. Got {version!r}."
            )
        source = self._versions_dir(profile, embedder) / f"{version}{SUFFIX}"
        if version not in self.versions(profile, embedder):
            raise ScannerFileError(
                f"No version {version!r} of {self._key(profile, embedder)}; "
                f"known: {', '.join(self.versions(profile, embedder)) or 'none'}."
            )
        Scanner.read_metadata(source)  # refuse to restore a damaged file
        current = self.path(profile, embedder)
        with self._lock():
            if current.exists():
                self._archive(current, profile, embedder)
            with atomic_writer(current) as fh:
                fh.write(source.read_bytes())
        return current

    def list(self) -> list[StoredScanner]:
        """Every current scanner in the store."""
        out = []
        for p in sorted(self.directory.glob(f"*{SUFFIX}")):
            stem = p.name[: -len(SUFFIX)]
            if stem.startswith("."):  # a save stopped half way (".tmp-…"), not a scanner
                continue
            profile, _, embedder = stem.rpartition("_")
            if not profile:
                continue
            # embedder names hold underscores too: split where the stored metadata says
            try:
                name = str(Scanner.read_metadata(p)["embedder"]["name"])
            except ScannerFileError as exc:  # said, else a damaged profile looks absent
                log.warning(
                    "%s Not listed. If it is damaged, earlier versions of it are in %s.",
                    exc,
                    self.directory / "versions",
                )
                continue
            if stem.endswith("_" + name):
                profile, embedder = stem[: -len(name) - 1], name
            out.append(StoredScanner(profile, embedder, p, tuple(self.versions(profile, embedder))))
        return out
