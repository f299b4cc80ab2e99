"""The gateway's logs: the rate-limited error log (a summary of what was left out comes with
the next record) and ``configure_logging`` (the access log, idempotent, bad input)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mixllm.clock import ManualClock
from mixllm.errors import ConfigError
from mixllm.serve.logs import RateLimitedErrors, configure_logging

WAIT_S = 5.0  # every wait on the server below is bounded by this


WAIT_S = 5.0  # every wait on the server below is bounded by this


# -- the error log's rate limit --------------------------------------------------------------
class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def test_rate_limited_errors_per_template_and_window() -> None:
    clock = ManualClock()
    out = Collect()
    limit = RateLimitedErrors(2, clock=clock)
    limit.install(out)
    log = _logger("test.edge.flood", out)
    other = _logger("test.edge.other", out)
    try:
        for i in range(5):
            log.error("accept failed: %d", i)
            log.info("fine %d", i)  # below WARNING: never limited
        other.error("accept failed: %d", 9)  # another logger: its own count
        log.error("socket.accept() out of system resource\nsocket: <fd=%d>", 6)
        log.error("socket.accept() out of system resource\nsocket: <fd=%d>", 7)
        log.error("socket.accept() out of system resource\nsocket: <other %d>", 8)
        assert limit.suppressed == 4
        errors = [line for line in out.lines if " ERROR " in line]
        assert errors == [
            "test.edge.flood ERROR accept failed: 0",
            "test.edge.flood ERROR accept failed: 1",
            "test.edge.other ERROR accept failed: 9",
            "test.edge.flood ERROR socket.accept() out of system resource\nsocket: <fd=6>",
            "test.edge.flood ERROR socket.accept() out of system resource\nsocket: <fd=7>",
        ]
        assert sum(" INFO " in line for line in out.lines) == 5
        out.lines.clear()
        clock.advance(59.0)
        log.error("accept failed: %d", 5)  # same window: still dropped
        assert out.lines == [] and limit.suppressed == 5
        clock.advance(1.0)
        log.error("accept failed: %d", 6)  # a new window: the summaries, then the record
        assert out.lines == [
            "test.edge.flood WARNING suppressed 4 similar messages: accept failed: %d",
            "test.edge.flood WARNING suppressed 1 similar messages: "
            "socket.accept() out of system resource",
            "test.edge.flood ERROR accept failed: 6",
        ]
    finally:
        for name in ("test.edge.flood", "test.edge.other"):
            logging.getLogger(name).handlers = []


def test_rate_limited_summary_comes_with_the_next_record_of_any_level() -> None:
    clock = ManualClock()
    out = Collect()
    RateLimitedErrors(1, clock=clock).install(out)
    log = _logger("test.edge.quiet", out)
    try:
        log.warning("slow client")
        log.warning("slow client")
        clock.advance(61.0)
        log.info("next")
        assert out.lines == [
            "test.edge.quiet WARNING slow client",
            "test.edge.quiet WARNING suppressed 1 similar messages: slow client",
            "test.edge.quiet INFO next",
        ]
    finally:
        logging.getLogger("test.edge.quiet").handlers = []


def test_rate_limit_rejects_a_bad_rate() -> None:
    with pytest.raises(ConfigError, match=r"errors per minute=0; expected an integer >= 1"):
        RateLimitedErrors(0)


_LOGGERS = ("", "mixllm", "mixllm.serve.access", "uvicorn", "uvicorn.error", "uvicorn.access",
            "httpx", "httpcore")  # fmt: skip


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = {}
    for name in _LOGGERS:
        log = logging.getLogger(name)
        saved[name] = (list(log.handlers), log.level, log.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        log = logging.getLogger(name)
        for h in log.handlers:
            if h not in handlers:
                h.close()
        log.handlers, log.level, log.propagate = handlers, level, propagate


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_writes_the_access_log_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text('{"earlier": true}\n')
    configure_logging("warning", access_log=path, errors_per_minute=3)
    configure_logging("warning", access_log=path, errors_per_minute=3)
    root, access = logging.getLogger(), logging.getLogger("mixllm.serve.access")
    ours = [h for h in root.handlers if getattr(h, "_mixllm_serve_handler", False)]
    assert len(ours) == 1 and len(access.handlers) == 1 and not access.propagate
    assert root.level == logging.WARNING and logging.getLogger("mixllm").level == logging.WARNING
    assert (
        logging.getLogger("uvicorn.error").propagate and not logging.getLogger("uvicorn").handlers
    )
    line = json.dumps({"method": "POST", "status": 200})
    access.info(line)  # written even though the level is warning
    assert path.read_text() == '{"earlier": true}\n' + line + "\n"
    limit = [f for f in ours[0].filters if isinstance(f, RateLimitedErrors)]
    assert len(limit) == 1 and limit[0].per_minute == 3


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"log level 'nonsense'; expected one of debug, info"):
        configure_logging("nonsense")
    with pytest.raises(ConfigError, match=r"access log .*missing.* cannot be opened"):
        configure_logging("info", access_log=tmp_path / "missing" / "access.log")
