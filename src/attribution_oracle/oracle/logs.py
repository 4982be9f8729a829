"""Structured logs: one JSON object per line on stderr (and optionally a file), never any key material."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

LOGGER = logging.getLogger("attribution_oracle.oracle")


class JsonLines(logging.Formatter):
    """Format a record as ``{"ts", "level", "event", ...fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line: time, level, message, the record's ``fields`` and the last line of any exception."""
        data = {"ts": round(record.created, 3), "level": record.levelname.lower(), "event": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(data, default=str, sort_keys=False)


def configure(node: str, path: Path | None = None, level: int = logging.INFO) -> None:
    """Send the oracle's logs as JSON lines to stderr and, if given, to ``path``."""
    LOGGER.handlers.clear()
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path))
    for handler in handlers:
        handler.setFormatter(JsonLines())
        LOGGER.addHandler(handler)
    LOGGER.node = node  # type: ignore[attr-defined]


def log(event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``event`` with structured ``fields``."""
    node = getattr(LOGGER, "node", None)
    LOGGER.log(level, event, extra={"fields": {"node": node, **fields} if node else fields})


def warn(event: str, **fields: object) -> None:
    """Log a warning."""
    log(event, logging.WARNING, **fields)


def now() -> float:
    """Wall-clock seconds (one place, so tests of latency read the same clock)."""
    return time.time()
