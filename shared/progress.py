"""A progress line for long one-off runs (back-fills): stdlib only, so jobs in the base image
(no numpy, no torch) can show it."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Done/total, rate and ETA on a stream (stderr): redrawn in place on a terminal, else one
    line at most every `every_s` seconds (and at the end), so logs stay readable."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        every_s: float = 1.0,
        unit: str = "documents",
    ) -> None:
        self.label, self.total, self.stream, self.every_s = label, total, stream or sys.stderr, every_s
        self.unit = unit
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = self.stream.isatty()

    def update(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = max(self.total - done, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        share = f"{100 * done / self.total:.0f}%" if self.total else "100%"
        line = f"{self.label}: {done}/{self.total} {self.unit} ({share}), {rate:.1f}/s, ETA {eta}"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
