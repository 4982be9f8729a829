"""Paging and sorting of the explorer's lists (every list is paged and sortable by its columns)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

PER_PAGE = 25


@dataclass(frozen=True)
class Page:
    """One page of a sorted list and how to reach the others."""

    rows: list[Any]
    number: int
    pages: int
    total: int
    sort: str
    order: str
    prefix: str

    def link(self, number: int | None = None, sort: str | None = None) -> str:
        """Query string of another page, or of this list sorted by ``sort`` (toggling the order if same)."""
        order = self.order
        if sort is not None and sort == self.sort:
            order = "asc" if self.order == "desc" else "desc"
        elif sort is not None:
            order = "desc"
        sort = sort or self.sort
        p = self.prefix
        return f"?{p}sort={sort}&{p}order={order}&{p}page={number if number is not None else 1}"


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, int(text)) if text is not None else default
    except ValueError:
        return default


def paginate(
    rows: Sequence[Any],
    keys: dict[str, Callable[[Any], Any]],
    params: dict[str, str],
    *,
    default: str,
    prefix: str = "",
    per_page: int = PER_PAGE,
    default_order: str = "desc",
) -> Page:
    """Sort ``rows`` by the column named in ``params[prefix+"sort"]`` (one of ``keys``) and cut one page.

    Unknown columns fall back to ``default``; a page past the end shows the last page.
    """
    sort = params.get(prefix + "sort", default)
    if sort not in keys:
        sort = default
    order = params.get(prefix + "order", default_order)
    if order not in ("asc", "desc"):
        order = default_order
    ordered = sorted(rows, key=keys[sort], reverse=order == "desc")
    pages = max(1, -(-len(ordered) // per_page))
    number = min(_int(params.get(prefix + "page"), 1), pages)
    start = (number - 1) * per_page
    return Page(ordered[start : start + per_page], number, pages, len(ordered), sort, order, prefix)
