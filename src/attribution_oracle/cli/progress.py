"""Progress for long commands: a rich bar on a terminal, plain timestamped lines in a log.

When stdout is not a terminal (``make demo > demo.log``, CI) a live bar shows nothing until it ends, so the
plain form prints one line at every tenth of the work and at least every ``LOG_EVERY_S`` seconds. Nothing is
shown until ``start`` is called, so a command that refuses early still prints a single ``error:`` line.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["LOG_EVERY_S", "StepProgress"]

LOG_EVERY_S = 30.0


class StepProgress:
    """Counts steps of one task; ``fields`` (e.g. ``loss``) are shown beside the count."""

    def __init__(self, console: Console, enabled: bool = True, fields: tuple[str, ...] = ()) -> None:
        """``enabled`` False (e.g. under ``--json``) shows nothing at all."""
        self.console, self.enabled, self.fields = console, enabled, fields
        self.description, self.total, self.done = "", 0, 0
        self.values: dict[str, Any] = {name: "-" for name in fields}
        self.bar: Progress | None = None
        self.task = None
        self.started = self.last_line = 0.0
        self.last_tenth = -1

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, description: str, total: int | None) -> None:
        """Begin showing ``description`` over ``total`` steps (None: unknown)."""
        self.description, self.total, self.done = description, total or 0, 0
        self.started = self.last_line = time.monotonic()
        self.last_tenth = 0
        if not self.enabled or self.bar is not None:
            return
        if self.console.is_terminal:
            extra = [TextColumn(f"{name} {{task.fields[{name}]}}") for name in self.fields]
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
                       TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
            self.bar = Progress(*columns, console=self.console)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, **self.values)
        else:
            self.console.print(f"{description}: 0/{self.total or '?'}", markup=False, highlight=False)

    def update(self, completed: int | None = None, advance: int = 0, **values: Any) -> None:
        """Set or advance the count and the shown fields."""
        if not self.total and not self.bar and not self.started:
            return
        self.done = completed if completed is not None else self.done + advance
        self.values.update(values)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, **self.values)
            return
        now = time.monotonic()
        tenth = 10 * self.done // self.total if self.total else -1
        if tenth > self.last_tenth or now - self.last_line >= LOG_EVERY_S or self.done == self.total:
            self.last_tenth, self.last_line = tenth, now
            shown = "".join(f", {k} {v}" for k, v in self.values.items())
            self.console.print(
                f"{self.description}: {self.done}/{self.total or '?'}{shown}, {now - self.started:.0f} s",
                markup=False, highlight=False,
            )  # fmt: skip

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more."""
        self.update(advance=steps)

    def note(self, text: str) -> None:
        """Print a line above the bar (or in the log)."""
        if self.enabled:
            (self.bar.console if self.bar is not None else self.console).print(text)

    def stop(self) -> None:
        """Remove the bar (a finished log needs no closing line)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
