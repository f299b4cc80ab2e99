"""The gateway's logs: :func:`configure_logging` (what ``mixllm serve`` calls) and
:class:`RateLimitedErrors`, which keeps a flood of one warning or error from filling the disk.

>>> from mixllm.clock import ManualClock
>>> clock = ManualClock()
>>> limit = RateLimitedErrors(2, clock=clock)
>>> record = logging.makeLogRecord({"name": "x", "levelno": logging.ERROR, "msg": "boom %d"})
>>> [limit.filter(record) for _ in range(4)], limit.suppressed
([True, True, False, False], 2)
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from mixllm.clock import Clock, SystemClock
from mixllm.errors import ConfigError

__all__ = ["LOG_LEVELS", "RateLimitedErrors", "configure_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error")
ACCESS_LOGGER = "mixllm.serve.access"
WINDOW_S = 60.0
SUMMARY = "suppressed %d similar messages: %s"
_MARK = "_mixllm_serve_handler"  # set on the handlers configure_logging adds


class RateLimitedErrors(logging.Filter):
    """At most ``per_minute`` records at WARNING and above per (logger name, message template)
    in each 60-s window; the rest are dropped and counted. At the first record after a window
    ends, one record ``suppressed K similar messages: <template>`` per template that lost any
    is written first (through the handler given to :meth:`install`, else through the logger
    of that name). Records below WARNING always pass.

    The template is the message before ``%`` formatting, first line only, so messages that
    differ by their arguments (or by what follows a first line, as asyncio's do) count as one.
    """

    def __init__(self, per_minute: int = 60, *, clock: Clock | None = None) -> None:
        if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1:
            raise ConfigError(f"errors per minute={per_minute!r}; expected an integer >= 1")
        super().__init__()
        self.per_minute = per_minute
        self.suppressed = 0  # records dropped in all
        self._clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._counts: dict[tuple[str, str], int] = {}
        self._dropped: dict[tuple[str, str], int] = {}
        self._handler: logging.Handler | None = None

    def install(self, handler: logging.Handler) -> logging.Handler:
        """Filter ``handler``'s records, and write the summaries there; returns it."""
        handler.addFilter(self)
        self._handler = handler
        return handler

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and not self._dropped:
            return True
        now = self._clock.now()
        with self._lock:
            if self._window_start is None:
                self._window_start = now
            ended = now - self._window_start >= WINDOW_S
            summaries = self._roll(now) if ended else []
            keep = True
            if record.levelno >= logging.WARNING:
                key = (record.name, _template(record.msg))
                count = self._counts.get(key, 0) + 1
                self._counts[key] = count
                if count > self.per_minute:
                    keep = False
                    self.suppressed += 1
                    self._dropped[key] = self._dropped.get(key, 0) + 1
        for summary in summaries:  # outside the lock: the summary passes through here too
            if self._handler is not None:
                self._handler.handle(summary)
            else:
                logging.getLogger(summary.name).handle(summary)
        return keep

    def _roll(self, now: float) -> list[logging.LogRecord]:
        summaries = [
            logging.makeLogRecord(
                {
                    "name": name,
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "msg": SUMMARY,
                    "args": (dropped, template),
                }
            )
            for (name, template), dropped in self._dropped.items()
        ]
        self._window_start = now
        self._counts = {}
        self._dropped = {}
        return summaries


def _template(msg: object) -> str:
    text = msg if isinstance(msg, str) else type(msg).__name__
    return text.partition("\n")[0][:200]


def configure_logging(
    level: str = "info", access_log: str | Path | None = None, errors_per_minute: int = 60
) -> None:
    """Logs for ``mixllm serve``: everything at ``level`` and above to stderr, one line a record
    (warnings and errors rate-limited by :class:`RateLimitedErrors`, uvicorn's and asyncio's
    included); the JSON access log (logger ``mixllm.serve.access``, one object per request) to
    stderr or, with ``access_log``, appended to that file line by line. uvicorn's own access
    log is off, and ``httpx``/``httpcore`` say only warnings unless ``level`` is debug.

    Calling it again replaces what an earlier call set up (no handler is added twice).
    """
    name = level.lower() if isinstance(level, str) else level
    if name not in LOG_LEVELS:
        raise ConfigError(f"log level {level!r}; expected one of {', '.join(LOG_LEVELS)}")
    numeric = int(getattr(logging, name.upper()))
    if access_log is not None:
        path = Path(access_log)
        try:
            access: logging.Handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"access log {str(path)!r} cannot be opened ({exc.strerror}); "
                "expected a writable file path"
            ) from exc
    else:
        access = logging.StreamHandler(sys.stderr)
    access.setFormatter(logging.Formatter("%(message)s"))
    errors = RateLimitedErrors(errors_per_minute).install(logging.StreamHandler(sys.stderr))
    errors.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    root = logging.getLogger()
    _replace(root, errors)
    root.setLevel(numeric)
    logging.getLogger("mixllm").setLevel(numeric)
    access_logger = logging.getLogger(ACCESS_LOGGER)
    _replace(access_logger, access)
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    for uv in ("uvicorn", "uvicorn.error"):  # through the root's rate-limited handler
        logging.getLogger(uv).handlers = []
        logging.getLogger(uv).propagate = True
    uv_access = logging.getLogger("uvicorn.access")
    uv_access.handlers = []
    uv_access.propagate = False


def _replace(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in list(logger.handlers):
        if getattr(old, _MARK, False):
            logger.removeHandler(old)
            old.close()  # a file is closed; stderr is not (StreamHandler leaves it open)
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
