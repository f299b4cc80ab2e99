"""The fenced code blocks of README.md and docs/*.md, and the runner that executes one doc's
shell and Python blocks in order (used by tests/test_docs.py, which says what runs and how).

A doc runs top to bottom in a folder of its own (:class:`DocRun`): each shell block is a bash
script (``set -euo pipefail``) and every Python block goes to one Python process per doc (a
small kernel, :func:`_kernel`), so the doc's Python blocks share one namespace whatever shell
blocks come between them. A ``mixllm serve`` line is started in the background on the doc's
port, waited for on ``/healthz``, used by the blocks that follow and stopped with SIGINT
(Ctrl-C) after the doc's last block. Scripts and Python blocks are padded with blank lines so
that an error names the line of the doc itself.

Run as a script (``python tests/docblocks.py --kernel``) this module is that kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
SERVE = re.compile(r"^(?:\$\s+)?mixllm\s+serve\s")
SHELL_LANGS = ("bash", "sh", "console")
#: the first line of every shell script (one line, so doc line numbers stay right)
PRELUDE = "set -euo pipefail"


@dataclass(frozen=True)
class Block:
    """One fenced code block: ``line`` is the line of its opening fence (1-based)."""

    doc: str
    line: int
    lang: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def first_line(self) -> str:
        return next((s.strip() for s in self.code.splitlines() if s.strip()), "")


def doc_paths(root: Path) -> list[str]:
    """README.md and every docs/*.md, relative to ``root``."""
    docs = sorted(p.relative_to(root).as_posix() for p in (root / "docs").glob("*.md"))
    return ["README.md", *docs]


def extract_blocks(root: Path, doc: str) -> list[Block]:
    """Every fenced block of ``doc``, in order; an unclosed fence is an error.

    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = (tmp / "a.md").write_text("x\\n```bash\\necho hi\\n```\\n\\n~~~\\nout\\n~~~\\n")
    >>> [(b.id, b.lang, b.code) for b in extract_blocks(tmp, "a.md")]
    [('a.md:2', 'bash', 'echo hi\\n'), ('a.md:6', '', 'out\\n')]
    """
    blocks: list[Block] = []
    opening: tuple[int, str, str, int] | None = None  # line, fence, lang, indent
    body: list[str] = []
    for number, text in enumerate((root / doc).read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(text)
        if opening is None:
            if match:
                fence, info = match["fence"], match["info"].lower()
                opening, body = (number, fence, info, len(match["indent"])), []
            continue
        line, fence, lang, indent = opening
        closing = text.strip()
        if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
            blocks.append(Block(doc, line, lang, "".join(s + "\n" for s in body)))
            opening = None
        else:
            body.append(text[min(indent, len(text) - len(text.lstrip(" "))) :])
    if opening is not None:
        raise ValueError(f"{doc}:{opening[0]}: code block never closed")
    return blocks


def console_commands(code: str) -> str:
    """The commands of a console transcript (lines after a ``$`` prompt; others are output,
    left blank so line numbers stay right); a block without prompts is taken as it is."""
    lines = code.splitlines()
    if not any(s.startswith("$ ") for s in lines):
        return code
    return "".join((s[2:] if s.startswith("$ ") else "") + "\n" for s in lines)


def split_serve(code: str, first_line: int) -> list[tuple[str, str, int]]:
    """``code`` cut at each ``mixllm serve`` command: ``("script" | "serve", text, doc line)``.

    >>> split_serve("a\\nmixllm serve d --replay x  # comment\\nb\\n", 10)
    [('script', 'a\\n', 10), ('serve', 'mixllm serve d --replay x', 11), ('script', 'b\\n', 12)]
    """
    parts: list[tuple[str, str, int]] = []
    lines = code.splitlines()
    start, i = 0, 0
    while i < len(lines):
        end = i
        while lines[end].rstrip().endswith("\\") and end + 1 < len(lines):
            end += 1
        command = " ".join(s.rstrip().removesuffix("\\").strip() for s in lines[i : end + 1])
        if SERVE.match(command):
            if start < i:
                parts.append(
                    ("script", "".join(s + "\n" for s in lines[start:i]), first_line + start)
                )
            command = re.sub(r"^\$\s+", "", re.sub(r"\s+#.*$", "", command))
            parts.append(("serve", command, first_line + i))
            start = end + 1
        i = end + 1
    if start < len(lines):
        parts.append(("script", "".join(s + "\n" for s in lines[start:]), first_line + start))
    return parts


def with_port(command: str, port: int) -> str:
    """``command`` listening on ``port`` (an existing ``--port`` replaced).

    >>> with_port("mixllm serve r --port 8000 --replay x", 9001)
    'mixllm serve r --replay x --port 9001'
    """
    command = re.sub(r"\s--port(?:\s+|=)\S+", "", command)
    return f"{command} --port {port}"


@dataclass
class Outcome:
    ok: bool
    detail: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 2)}


def _tail(path: Path, start: int, limit: int = 6000) -> str:
    with path.open("rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    return text if len(text) <= limit else "…" + text[-limit:]


class DocRun:
    """Runs one doc's shell and Python blocks, in order, in ``workdir`` (see the module doc).

    ``blocks`` are ``(block, code)`` pairs, the code already rewritten for this run. Each
    outcome says whether the block ran without error and, if not, the end of its output.
    """

    def __init__(
        self,
        blocks: Sequence[tuple[Block, str]],
        *,
        root: Path,
        workdir: Path,
        logdir: Path,
        env: Mapping[str, str],
        port: int,
        timeout_s: float,
        health_timeout_s: float = 120.0,
    ) -> None:
        self.blocks, self.root, self.workdir, self.logdir = blocks, root, workdir, logdir
        self.env, self.port, self.timeout_s = dict(env), port, timeout_s
        self.health_timeout_s = health_timeout_s
        self.log = logdir / "output.log"
        self._kernel: subprocess.Popen[bytes] | None = None
        self._results: queue.Queue[str] = queue.Queue()
        self._pump: threading.Thread | None = None
        self._server: tuple[subprocess.Popen[bytes], str] | None = None  # process, block id

    def run(self) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        self.logdir.mkdir(parents=True, exist_ok=True)
        try:
            for block, code in self.blocks:
                start, offset = time.monotonic(), self._size()
                with self.log.open("ab") as log:
                    log.write(f"\n===== {block.id} ({block.lang}) =====\n".encode())
                try:
                    if block.lang == "python":
                        error = self._python(block, code)
                    else:
                        error = self._shell(block, code)
                except Exception as exc:  # the runner's own failure: report it on the block
                    error = f"{type(exc).__name__}: {exc}"
                detail = (
                    "" if error is None else f"{error}\n--- output ---\n{_tail(self.log, offset)}"
                )
                outcomes[block.id] = Outcome(error is None, detail, time.monotonic() - start)
        finally:
            self._stop_kernel()
            server_error = self._stop_server()
        if server_error is not None and self._server_block in outcomes:
            outcome = outcomes[self._server_block]
            outcomes[self._server_block] = Outcome(False, server_error, outcome.seconds)
        return outcomes

    def _size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    # -- shell -----------------------------------------------------------------------------------
    def _shell(self, block: Block, code: str) -> str | None:
        if block.lang == "console":
            code = console_commands(code)
        for kind, text, line in split_serve(code, block.line + 1):
            error = self._bash(text, line) if kind == "script" else self._serve(text, block.id)
            if error is not None:
                return error
        return None

    def _bash(self, text: str, first_line: int) -> str | None:
        script = self.logdir / f"line-{first_line}.sh"
        script.write_text(PRELUDE + "\n" * (first_line - 1) + text, encoding="utf-8")
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                ["bash", str(script)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return f"timed out after {self.timeout_s:g} s (lines from {first_line})"
        return None if rc == 0 else f"bash exited with status {rc} (lines from {first_line})"

    def _serve(self, command: str, block_id: str) -> str | None:
        if self._server is not None:
            return f"a second 'mixllm serve' in one doc (the first: {self._server[1]})"
        command = with_port(command, self.port)
        with self.log.open("ab") as log:
            log.write(f"$ {command} &\n".encode())
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._server = (proc, block_id)
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + self.health_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"'{command}' exited with status {proc.returncode} before /healthz answered"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        return f"{url} did not answer 200 within {self.health_timeout_s:g} s"

    @property
    def _server_block(self) -> str:
        return "" if self._server is None else self._server[1]

    def _stop_server(self) -> str | None:
        """SIGINT (Ctrl-C), as the docs say to stop the gateway; an error if it does not exit."""
        if self._server is None:
            return None
        proc, _ = self._server
        if proc.poll() is not None:
            return None  # already reported: it died before answering, or a block stopped it
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return "the server did not exit within 30 s of SIGINT"
        return None  # any status: click reports Ctrl-C as "Aborted!", status 1

    # -- python ----------------------------------------------------------------------------------
    def _python(self, block: Block, code: str) -> str | None:
        if self._kernel is None or self._kernel.poll() is not None:
            self._start_kernel()
        assert self._kernel is not None and self._kernel.stdin is not None
        source = "\n" * block.line + code  # the traceback names the doc's own lines
        request = {"name": str(self.root / block.doc), "code": source}
        self._kernel.stdin.write((json.dumps(request) + "\n").encode())
        self._kernel.stdin.flush()
        try:
            reply = json.loads(self._results.get(timeout=self.timeout_s))
        except queue.Empty:
            self._stop_kernel()
            return f"timed out after {self.timeout_s:g} s (later Python blocks: a new namespace)"
        except json.JSONDecodeError as exc:
            return f"the Python kernel answered garbage: {exc}"
        if not reply.get("ok"):
            return str(reply.get("detail", "failed"))
        return None

    def _start_kernel(self) -> None:
        log = self.log.open("ab")
        self._kernel = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--kernel"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        results: queue.Queue[str] = queue.Queue()
        self._results = results
        out = self._kernel.stdout
        assert out is not None

        def pump(stream: IO[bytes]) -> None:
            for line in stream:
                results.put(line.decode("utf-8", "replace"))
            results.put(json.dumps({"ok": False, "detail": "the Python kernel exited"}))

        self._pump = threading.Thread(target=pump, args=(out,), daemon=True)
        self._pump.start()

    def _stop_kernel(self) -> None:
        proc, self._kernel = self._kernel, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
        if self._pump is not None:
            self._pump.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _kernel() -> None:
    """Execute the Python blocks sent on stdin (one JSON object a line: ``name``, ``code``) in
    one namespace; answer each on stdout with ``{"ok", "detail"}``. What the blocks print goes
    to stderr (the runner's log)."""
    results = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.path[0] = ""  # like `python -c`: the working folder, not tests/
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            exec(compile(request["code"], request["name"], "exec"), namespace)
        except BaseException:  # SystemExit and KeyboardInterrupt too: the block failed
            ok, detail = False, traceback.format_exc()
        else:
            ok, detail = True, ""
        sys.stdout.flush()
        sys.stderr.flush()
        results.write(json.dumps({"ok": ok, "detail": detail}) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--kernel"]:
    _kernel()
