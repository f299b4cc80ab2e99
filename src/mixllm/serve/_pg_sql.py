"""The SQL side of the PostgreSQL store (:mod:`mixllm.serve._postgres`): the store's SQL is
written once, SQLite-style; here its ``?`` and ``:name`` placeholders become psycopg's, rows read
by index and by column name as ``sqlite3.Row`` does, and text that PostgreSQL cannot hold (NUL)
is replaced."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from mixllm.serve._sqlite import Cursor

__all__ = ["Adapter", "Row", "row_factory", "translate"]


# A string literal, a quoted name, a comment, a cast, or a placeholder or '%' to translate.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|::|\?|:([A-Za-z_]\w*)|%")


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite-style placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``).

    >>> translate("SELECT ':a', x::text FROM t WHERE a = ? AND b LIKE '%' || :b")
    "SELECT ':a', x::text FROM t WHERE a = %s AND b LIKE '%' || %(b)s"
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return token

    return _TOKENS.sub(replace, sql)


class Row:
    """A row readable by index and by column name (the first column of that name)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._names)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=True))!r})"


def row_factory(cursor: Any) -> Any:
    names: dict[str, int] = {}
    for i, column in enumerate(cursor.description or ()):
        names.setdefault(column.name, i)
    return lambda values: Row(names, values)


def _text(value: Any) -> Any:
    """PostgreSQL's text cannot hold NUL: a string's NULs become U+FFFD (in reads and writes
    alike, so an id with a NUL still finds its row)."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


class Adapter:
    """A psycopg connection that runs the store's SQLite-style SQL."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = None, /) -> Cursor:
        if parameters is None:
            return self._conn.execute(sql)
        if isinstance(parameters, dict):
            parameters = {name: _text(value) for name, value in parameters.items()}
        else:
            parameters = [_text(value) for value in parameters]
        return self._conn.execute(translate(sql), parameters)
