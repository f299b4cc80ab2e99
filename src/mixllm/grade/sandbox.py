"""Run an answer's Python code against test code in a guarded subprocess.

:func:`run_code_tests` writes the code and the tests to files in a fresh temporary directory and
runs them, code first, in a new ``python -I -B`` process (this interpreter) started in a new
session in that directory, with an environment stripped to ``PATH``, ``HOME`` and ``TMPDIR``
(both the directory) and a few thread settings, and these guards:

- a wall-clock timeout, after which the whole process group is killed (reason ``timeout``);
- resource limits: CPU time (about the timeout), address space (``memory_mb``; an answer that
  runs out of it ends with reason ``memory``), 16 MiB per written file, 256 open files, no
  core dumps, and, for a user other than root (whom the kernel does not hold to it), at most
  64 processes or threads more than the user runs already;
- an audit hook (:func:`sys.addaudithook`, which Python code cannot remove) installed before the
  code runs, refusing network calls (connect, bind, name look-ups...), new processes
  (``subprocess``, ``os.system``, ``os.exec*``, ``os.fork``...), ``os.kill``, ``ctypes`` calls
  and libraries (importing ``ctypes`` stays possible: numpy does), and file-system changes
  (writing, removing, renaming, ``chmod``...) outside the directory; a refused call fails the
  run with reason ``blocked: <what>``, even when the answer catches the error;
- where ``unshare --user --net`` works for this user (checked once), the process runs in its
  own network namespace, which has no network at all.

The run passes when the tests finish without an exception: the child writes a token it was
given on stdin to a result file, so an answer that exits early (``sys.exit(0)``) does not pass.
Output is written to files limited in size, and the last few KiB are kept in
:attr:`CodeRun.output`. The directory is removed afterwards.

This is a best-effort guard against the accidents of graded answers (an endless loop, a memory
bomb, a stray ``rm``), not a security boundary: code written to escape it (through frame
introspection, say, or a bug in CPython) can, and reading files is not restricted. Grade
answers from untrusted sources in a container or a virtual machine without credentials. POSIX
only (needs :mod:`resource`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mixllm.errors import ConfigError

__all__ = ["CodeRun", "extract_code", "run_code_tests"]

_CHILD = Path(__file__).with_name("_child.py")
_FILE_LIMIT = 16 * 2**20
_OPEN_FILES = 256
_EXTRA_PROCESSES = 64
_OUTPUT_KEPT = 4096
_Limits = tuple[tuple[int, int, int], ...]
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class CodeRun:
    """The outcome of :func:`run_code_tests`.

    ``reason`` is ``passed``, ``failed``, ``timeout``, ``memory`` or ``blocked: <what>``;
    ``output`` the end of the run's stderr (and stdout), for a person to read.
    """

    passed: bool
    reason: str
    duration_s: float
    output: str = ""


def extract_code(answer: str) -> str:
    """The Python code of a reply: its fenced blocks (``python`` ones first), else all of it.

    Blocks that do not compile (an interactive session, a shell command) are left out when
    others do.

    >>> extract_code("Here:\\n```python\\ndef f(x):\\n    return x + 1\\n```\\nDone.")
    'def f(x):\\n    return x + 1\\n'
    >>> extract_code("print(1)")
    'print(1)'
    """
    blocks = _FENCE.findall(answer)
    if not blocks:
        return answer
    python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
    chosen = python or [body for lang, body in blocks if not lang]
    chosen = chosen or [body for _, body in blocks]
    compiled = [body for body in chosen if _compiles(body)]
    return "\n".join(compiled or chosen[:1])


def _compiles(code: str) -> bool:
    try:
        compile(code, "<answer>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[str, ...]:
    """``unshare --user --net`` if it works unprivileged here, else nothing (checked once)."""
    path = shutil.which("unshare")
    if path is None:
        return ()
    command = [path, "--user", "--net", "true"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ()
    return (path, "--user", "--net") if done.returncode == 0 else ()


def _count_tasks(uid: int) -> int | None:
    """Threads this user runs now (what ``RLIMIT_NPROC`` counts), or ``None`` without /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    total = 0
    for name in names:
        if name.isdigit():
            try:
                st = os.stat(f"/proc/{name}/task")
            except OSError:
                continue
            if st.st_uid == uid:
                total += max(st.st_nlink - 2, 1)
    return total


def _child_limits(cpu_s: int, memory_bytes: int, processes: int | None) -> _Limits:
    """(resource, soft, hard) for the child, none above this process's own hard limits."""
    import resource

    wanted = [
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),  # SIGXCPU, then SIGKILL a second later
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),
        (resource.RLIMIT_FSIZE, _FILE_LIMIT, _FILE_LIMIT),
        (resource.RLIMIT_NOFILE, _OPEN_FILES, _OPEN_FILES),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if processes is not None:
        wanted.append((resource.RLIMIT_NPROC, processes, processes))
    limits = []
    for which, soft, hard in wanted:
        current = resource.getrlimit(which)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        limits.append((which, soft, hard))
    return tuple(limits)


def _set_limits(setrlimit: Callable[[int, tuple[int, int]], None], limits: _Limits) -> None:
    """Runs in the child between fork and exec: calls only (an import there could deadlock)."""
    for which, soft, hard in limits:
        setrlimit(which, (soft, hard))


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(path.stat().st_size - _OUTPUT_KEPT, 0))
            return f.read(_OUTPUT_KEPT).decode("utf-8", "replace")
    except OSError:
        return ""


def run_code_tests(
    code: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 512
) -> CodeRun:
    """Run ``code`` then ``tests`` in a guarded subprocess; passed if the tests raise nothing.

    Parameters
    ----------
    code
        The answer's Python code (see :func:`extract_code`).
    tests
        Python code that checks it, usually ``assert`` statements; it runs in the same
        namespace, after ``code``.
    timeout_s
        Wall-clock limit of the whole run, in seconds (the CPU-time limit is about the same).
    memory_mb
        Address-space limit of the process, in MiB (at least 64).

    >>> run_code_tests("def f(x):\\n    return 2 * x", "assert f(3) == 6").reason
    'passed'
    >>> run_code_tests("def f(x):\\n    return x", "assert f(3) == 6").reason
    'failed'
    """
    if not timeout_s > 0 or not math.isfinite(timeout_s):
        raise ConfigError(f"timeout_s={timeout_s!r}; expected a positive number of seconds")
    if memory_mb < 64:
        raise ConfigError(f"memory_mb={memory_mb!r}; expected at least 64 (MiB)")
    try:
        import resource
    except ImportError:
        raise ConfigError(
            "code grading runs only on POSIX systems (it needs resource limits)"
        ) from None
    uid = os.getuid()
    tasks = None if uid == 0 else _count_tasks(uid)  # root is not held to RLIMIT_NPROC
    processes = None if tasks is None else tasks + _EXTRA_PROCESSES
    token = secrets.token_hex(16)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mixllm-grade-", ignore_cleanup_errors=True) as tmp:
        root = Path(os.path.realpath(tmp))
        (root / "solution.py").write_text(code, encoding="utf-8")
        (root / "tests.py").write_text(tests, encoding="utf-8")
        env = {
            "PATH": os.defpath,
            "HOME": str(root),
            "TMPDIR": str(root),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        command = [*_unshare_prefix(), sys.executable, "-I", "-B", str(_CHILD), str(root)]
        limits = _child_limits(math.ceil(timeout_s) + 1, memory_mb * 2**20, processes)
        timed_out = False
        with (root / "stdout").open("wb") as out, (root / "stderr").open("wb") as err:
            proc = subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=functools.partial(_set_limits, resource.setrlimit, limits),
            )
            try:
                assert proc.stdin is not None
                with contextlib.suppress(OSError):  # OSError: the child is gone already
                    proc.stdin.write(f"{token}\n".encode())
                    proc.stdin.close()
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        duration = time.perf_counter() - start
        output = _tail(root / "stderr") or _tail(root / "stdout")
        try:
            result = (root / "result").read_text(encoding="utf-8", errors="replace")
        except OSError:
            result = ""
    if timed_out or proc.returncode == -signal.SIGXCPU:
        return CodeRun(False, "timeout", duration, output)
    mine, _, status = result.partition(" ")
    if mine != token:
        status = "memory" if "MemoryError" in output else "failed"
    if status == "passed" and proc.returncode != 0:
        status = "failed"
    return CodeRun(status == "passed", status, duration, output)
