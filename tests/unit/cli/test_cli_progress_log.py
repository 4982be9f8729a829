"""Progress in a log (stdout not a terminal): plain lines as the work goes, not one bar at the end (finding 12)."""

from __future__ import annotations

import io

from rich.console import Console

from attribution_oracle.cli.progress import StepProgress


def _log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_a_log_gets_a_line_per_tenth_of_the_work_with_the_fields():
    console, out = _log_console()
    with StepProgress(console, fields=("loss",)) as progress:
        progress.start("training", 40)
        for step in range(1, 41):
            progress.update(completed=step, loss=f"{4 - step / 20:.4f}")
    lines = out.getvalue().splitlines()
    assert lines[0] == "training: 0/40"
    assert len(lines) == 11  # the start, then 10%, 20%, ... 100%
    assert lines[1].startswith("training: 4/40, loss 3.8000, ")
    assert lines[-1].startswith("training: 40/40, loss 2.0000, ") and lines[-1].endswith(" s")


def test_nothing_is_printed_before_start_or_when_disabled():
    console, out = _log_console()
    progress = StepProgress(console)
    progress.advance()
    assert out.getvalue() == ""
    quiet = StepProgress(console, enabled=False)
    quiet.start("x", 3)
    quiet.advance(3)
    quiet.note("hidden")
    assert out.getvalue() == ""


def test_a_terminal_gets_a_live_bar_instead_of_lines():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with StepProgress(console) as progress:
        progress.start("auditing", 3)
        progress.advance(3)
        assert progress.bar is not None
    assert "auditing: 0/3" not in out.getvalue()
