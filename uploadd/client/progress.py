"""How far transfers are: rich progress bars (bytes, speed, time left) on a
terminal; otherwise a line per event (start, resume, end), for logs and pipes."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol, TextIO

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Meter(Protocol):
    """One transfer's progress."""

    def update(self, done: int) -> None:
        """``done`` bytes of the total are transferred (it may go back)."""

    def note(self, text: str) -> None:
        """Say something about this transfer."""

    def close(self) -> None:
        """The transfer ended."""


@attrs.define
class _PlainMeter:
    _name: str
    _stream: TextIO
    _lock: threading.Lock

    def update(self, done: int) -> None:
        pass

    def note(self, text: str) -> None:
        with self._lock:
            self._stream.write(f"{self._name}: {text}\n")
            self._stream.flush()

    def close(self) -> None:
        pass


@attrs.define
class _BarMeter:
    _name: str
    _progress: Progress
    _task: TaskID

    def update(self, done: int) -> None:
        self._progress.update(self._task, completed=done)

    def note(self, text: str) -> None:
        self._progress.console.print(
            f"{self._name}: {text}", markup=False, highlight=False, soft_wrap=True
        )

    def close(self) -> None:
        self._progress.refresh()


class Display:
    """Where every transfer of one command shows its progress; use it as a
    context manager around the transfers."""

    def __init__(self, stream: TextIO, bars: bool | None = None) -> None:
        console = Console(file=stream)
        self._stream = stream
        self._lock = threading.Lock()
        self._bars = console.is_terminal if bars is None else bars
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self._bars,
        )

    def __enter__(self) -> Display:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def track(self, name: str, total: int, done: int = 0) -> Meter:
        """A meter for one transfer of ``total`` bytes, ``done`` of them already."""
        if not self._bars:
            return _PlainMeter(name, self._stream, self._lock)
        task = self._progress.add_task(name, total=total, completed=done)
        return _BarMeter(name, self._progress, task)
