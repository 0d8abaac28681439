"""What every command shares: the :class:`Run` it gets, the session around it
(logging, progress bars, thread limits, Ctrl-C), exit codes and error text."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import attrs

from audio_embed.errors import AudioEmbedError, describe_error
from audio_embed.progress import CancelToken, ProgressCallback, ProgressEvent

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "PROG",
    "Progress",
    "Run",
    "UsageError",
    "describe_error",
    "fail",
    "session",
    "write_stderr",
]

PROG = "audio-embed"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130

log = logging.getLogger("audio_embed.cli")


class UsageError(AudioEmbedError):
    """A command line that cannot work as given (exit code 2)."""


@attrs.define
class Run:
    """What every command gets: its arguments, the cancel token, progress settings."""

    args: argparse.Namespace
    cancel: CancelToken
    show_progress: bool
    out: TextIO
    indent: str = ""

    def echo(self, text: str = "") -> None:
        if self.indent and text:
            text = "\n".join(self.indent + line for line in text.split("\n"))
        if self.show_progress:  # above the progress bars, which are redrawn below
            from tqdm import tqdm

            tqdm.write(text, file=self.out)
            self.out.flush()
        else:
            print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        write_stderr(f"{PROG}: {text}")

    def skipped(self, item: object, reason: str) -> None:
        """``skipped ITEM: REASON``, the reason without the file name it starts with
        (an error message names its file, as given or relative to here; before:
        ``skipped /data/a.wav: a.wav: the file is empty``)."""
        name = str(item)
        spellings = [name]
        with contextlib.suppress(ValueError):  # another drive (Windows)
            spellings.append(os.path.relpath(name))
        for spelling in spellings:
            if reason.startswith(f"{spelling}: "):
                reason = reason[len(spelling) + 2 :]
                break
        self.warn(f"skipped {name}: {reason}")

    def file_bar(self, total: int, desc: str) -> Any:
        """An outer bar over files (a no-op object when progress is off)."""
        if not self.show_progress:
            return _NullBar()
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)

    @contextmanager
    def seconds_bar(self, path: Path, stage: str) -> Iterator[ProgressCallback | None]:
        """A bar over the seconds of one file, fed by the library's ProgressEvents."""
        if not self.show_progress:
            yield None
            return
        from tqdm import tqdm

        from audio_embed.audio import probe_audio

        try:
            total = probe_audio(path, getattr(self.args, "audio_stream", None)).duration
        except (AudioEmbedError, OSError):
            total = None
        bar = tqdm(
            total=round(total, 1) if total else None,
            desc=f"{stage} {path.name}",
            unit="s",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]"
            if total
            else None,
        )

        def callback(event: ProgressEvent) -> None:
            if event.stage == "embed":
                done = float(event.done) if total is None else min(float(event.done), total)
                bar.update(done - bar.n)

        try:
            yield callback
        finally:
            bar.close()


class _NullBar:
    total: float | None = None

    def refresh(self) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


_bars_active = threading.local()


def write_stderr(text: str) -> None:
    if getattr(_bars_active, "on", False):
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"
            if record.exc_info:
                msg += "\n" + "".join(traceback.format_exception(*record.exc_info))
            write_stderr(msg)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


@contextmanager
def session(args: argparse.Namespace) -> Iterator[Run]:
    """Logging, progress, thread limits and a SIGINT handler for one command."""
    quiet = bool(getattr(args, "quiet", False))
    verbose = bool(getattr(args, "verbose", False))
    show = not quiet and sys.stderr.isatty()
    _bars_active.on = show
    lib_logger = logging.getLogger("audio_embed")
    handler = _StderrHandler()
    old_level, old_propagate = lib_logger.level, lib_logger.propagate
    lib_logger.addHandler(handler)
    lib_logger.setLevel(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)
    lib_logger.propagate = False
    token = CancelToken()
    old_sigint: Any = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:

        def on_sigint(signum: int, frame: object) -> None:
            if token.cancelled:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            token.cancel()
            write_stderr(f"{PROG}: stopping… (press Ctrl-C again to stop at once)")

        old_sigint = signal.signal(signal.SIGINT, on_sigint)
    threads = getattr(args, "threads", None)
    limiter: Any = None
    old_torch_threads: int | None = None
    if threads:
        import torch
        from threadpoolctl import threadpool_limits

        old_torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        limiter = threadpool_limits(limits=threads)
    try:
        yield Run(args=args, cancel=token, show_progress=show, out=sys.stdout)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if old_torch_threads is not None:
            import torch

            torch.set_num_threads(old_torch_threads)
        if in_main:
            signal.signal(signal.SIGINT, old_sigint)
        lib_logger.removeHandler(handler)
        lib_logger.setLevel(old_level)
        lib_logger.propagate = old_propagate
        _bars_active.on = False


class Progress:
    """Routes a long call's ProgressEvents to a bar over files and a bar over the
    seconds of the file being embedded (no bars when progress is off)."""

    def __init__(self, run: Run, n_files: int, desc: str) -> None:
        self.run = run
        self.desc = desc
        self.files = run.file_bar(n_files, desc)
        self.source: str | None = None
        self.bar: Any = None
        self.callback: ProgressCallback | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "train-files":
            self.files.update(1)
            return
        if event.stage == "files":  # from audio_embed.batch.run_many
            if event.done == 0:
                self.files.total = event.total
                self.files.refresh()
            else:
                self.file_done()
            return
        if event.source != self.source:
            self._close_file()
            self.source = event.source
            stage = "embed" if self.desc == "train" else self.desc
            self.bar = self.run.seconds_bar(Path(event.source), stage)
            self.callback = self.bar.__enter__()
        if self.callback is not None:
            self.callback(event)

    def file_done(self) -> None:
        self._close_file()
        self.source = None
        self.files.update(1)

    def _close_file(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = self.callback = None

    def close(self) -> None:
        self._close_file()
        self.files.close()


def fail(message: str) -> None:
    """Print ``audio-embed: error: message`` on stderr (above any progress bars)."""
    write_stderr(f"{PROG}: error: {message}")
