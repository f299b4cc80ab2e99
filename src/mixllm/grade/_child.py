"""The child side of :func:`mixllm.grade.run_code_tests` (run as a script, never imported).

``python -I -B _child.py <dir>`` reads a one-line token from stdin, installs an audit hook that
refuses network, process, ctypes and out-of-``<dir>`` file-system events, then runs
``<dir>/solution.py`` and ``<dir>/tests.py`` in one namespace and writes
``<token> <status>`` to ``<dir>/result`` (status: ``passed``, ``failed``, ``memory`` or
``blocked: <event>``). Without the token in the result, the parent counts the run as failed, so
an answer that exits early (``sys.exit(0)``, ``os._exit(0)``) does not pass. The code runs as
module ``solution`` (not ``__main__``), so its ``if __name__ == "__main__":`` block does not.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

# Refused whatever their arguments.
_DENIED = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "socket.sethostname",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.spawn",
        "os.posix_spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "os.startfile",
        "pty.spawn",
        "resource.setrlimit",
        "resource.prlimit",
        "sys.settrace",
        "sys.setprofile",
        "sys._current_frames",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sqlite3.enable_load_extension",
        "sqlite3.load_extension",
        "webbrowser.open",
    }
)
# Modules whose (re)import would reach around the hook: a fresh _posixsubprocess.fork_exec,
# a sub-interpreter without this hook.
_DENIED_IMPORTS = frozenset(
    {"_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels", "_interpreters"}
)
# event -> (indexes of the path arguments, index of the dir_fd argument or None)
_PATHS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "os.remove": ((0,), 1),
    "os.rmdir": ((0,), 1),
    "os.mkdir": ((0,), 2),
    "os.chmod": ((0,), 2),
    "os.chown": ((0,), 3),
    "os.chflags": ((0,), None),
    "os.lchflags": ((0,), None),
    "os.truncate": ((0,), None),
    "os.utime": ((0,), 3),
    "os.mkfifo": ((0,), 2),
    "os.mknod": ((0,), 3),
    "os.setxattr": ((0,), None),
    "os.removexattr": ((0,), None),
    "os.rename": ((0, 1), None),
    "os.link": ((0, 1), None),
    "os.symlink": ((1,), 2),
    "shutil.rmtree": ((0,), 1),
    "shutil.move": ((0, 1), None),
    "shutil.copyfile": ((1,), None),
    "shutil.copymode": ((1,), None),
    "shutil.copystat": ((1,), None),
    "shutil.copytree": ((1,), None),
    "shutil.chown": ((0,), None),
    "sqlite3.connect": ((0,), None),
}
# (event, index) of paths that name a directory entry: a symbolic link there is not followed
_ENTRIES = frozenset(
    {
        ("os.remove", 0),
        ("os.rmdir", 0),
        ("os.mkdir", 0),
        ("os.mkfifo", 0),
        ("os.mknod", 0),
        ("os.rename", 0),
        ("os.rename", 1),
        ("os.link", 1),
        ("os.symlink", 1),
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_WRITABLE = frozenset({os.devnull})


class BlockedError(PermissionError):
    """An event the grading sandbox refuses."""


def _resolve(path: object, dir_fd: object, root: str, entry: bool = False) -> str | None:
    """The real path ``path`` names, or ``None`` when it cannot be told.

    With ``entry``, a symbolic link itself (its directory resolved), not what it points to.
    """
    try:
        if isinstance(path, int):
            return os.readlink(f"/proc/self/fd/{path}")
        text = os.fsdecode(os.fspath(path))  # type: ignore[call-overload]
        if text == ":memory:" or text == "":
            return root
        if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(text):
            text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
        head, name = os.path.split(text)
        if entry and name not in ("", ".", ".."):
            return os.path.join(os.path.realpath(head or "."), name)
        return os.path.realpath(text)
    except (OSError, TypeError, ValueError):
        return None


def _make_hook(root: str, refused: list[str]) -> Callable[[str, tuple[Any, ...]], None]:
    busy: set[int] = set()
    import _thread

    get_ident = _thread.get_ident

    def inside(path: object, dir_fd: object = None, entry: bool = False) -> bool:
        real = _resolve(path, dir_fd, root, entry)
        return real is not None and (real == root or real.startswith(root + os.sep))

    def deny(what: str) -> None:
        if not refused:
            refused.append(what)
        raise BlockedError(f"refused by the grading sandbox: {what}")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        me = get_ident()
        if me in busy:  # an event raised by this hook's own checks
            return
        busy.add(me)
        try:
            if event in _DENIED:
                deny(event)
            elif event.startswith("ctypes.") and not (event == "ctypes.dlopen" and args[0] is None):
                deny(event)  # `import ctypes` (numpy imports it) opens the program itself
            elif event == "import" and args and args[0] in _DENIED_IMPORTS:
                deny(f"import {args[0]}")
            elif event == "open":
                path, mode, flags = (*args, None, None, None)[:3]
                writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & _WRITE_FLAGS
                )
                if (
                    writes
                    and not isinstance(path, int)
                    and _resolve(path, None, root) not in _WRITABLE
                    and not inside(path)
                ):
                    deny(f"open for writing {path!r}")
            elif event in _PATHS:
                indexes, fd_index = _PATHS[event]
                dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
                for i in indexes:
                    if i < len(args) and not inside(args[i], dir_fd, (event, i) in _ENTRIES):
                        deny(f"{event} {args[i]!r}")
        finally:
            busy.discard(me)

    return hook


def _run(root: str) -> str:
    token = sys.stdin.readline().strip()
    with open(os.path.join(root, "solution.py"), encoding="utf-8") as f:
        solution = f.read()
    with open(os.path.join(root, "tests.py"), encoding="utf-8") as f:
        tests = f.read()
    result = os.open(os.path.join(root, "result"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    # loaded now (subprocess imports it too), so that a later import of it can be refused
    import _posixsubprocess

    def no_fork_exec(*args: object) -> None:
        raise BlockedError("refused by the grading sandbox: _posixsubprocess.fork_exec")

    setattr(_posixsubprocess, "fork_exec", no_fork_exec)  # noqa: B010 (typed as the original)
    del _posixsubprocess

    refused: list[str] = []
    sys.addaudithook(_make_hook(root, refused))
    # a real module (dataclasses, pickle and typing look their class's module up), not __main__
    module = types.ModuleType("solution")
    sys.modules["solution"] = module
    sys.argv = [os.path.join(root, "solution.py")]
    namespace = module.__dict__
    status = "failed"
    try:
        exec(compile(solution, os.path.join(root, "solution.py"), "exec"), namespace)
        exec(compile(tests, os.path.join(root, "tests.py"), "exec"), namespace)
        status = "passed"
    except MemoryError:
        namespace.clear()
        status = "memory"
    except BaseException:  # SystemExit too: an answer that exits skips the tests
        traceback.print_exc()
    if refused:
        status = f"blocked: {refused[0]}"
    os.write(result, f"{token} {status}".encode("utf-8", "replace"))
    return status


if __name__ == "__main__":
    sys.exit(0 if _run(os.path.realpath(sys.argv[1])) == "passed" else 1)
