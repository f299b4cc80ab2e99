"""The code grader's sandbox: answers are run, and the harm they try is refused."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from mixllm.errors import ConfigError
from mixllm.grade import CodeRun, extract_code, grade, run_code_tests, sandbox

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs POSIX limits")

SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


def run(code: str, tests: str = "", **limits: float) -> CodeRun:
    return run_code_tests(
        textwrap.dedent(code),
        textwrap.dedent(tests),
        timeout_s=limits.get("timeout_s", 10.0),
        memory_mb=int(limits.get("memory_mb", 512)),
    )


@pytest.fixture(params=["audit hook only", "network namespace"])
def isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each guard on its own: with and without ``unshare --user --net`` (where it works)."""
    if request.param == "audit hook only":
        monkeypatch.setattr(sandbox, "_unshare_prefix", lambda: ())
    elif not sandbox._unshare_prefix():
        pytest.skip("unshare --user --net does not work for this user here")
    return str(request.param)


def test_a_correct_solution_passes_and_a_wrong_one_fails() -> None:
    assert run(SOLUTION, TESTS) == CodeRun(True, "passed", pytest.approx(0.0, abs=60), "")
    wrong = run(SOLUTION.replace("a + b", "a - b"), TESTS)
    assert (wrong.passed, wrong.reason) == (False, "failed")
    assert "AssertionError" in wrong.output
    assert grade(SOLUTION, TESTS, "code") == 1.0
    assert grade(SOLUTION.replace("a + b", "a * b"), TESTS, "code") == 0.0
    assert grade("def add(a, b) return", TESTS, "code") == 0.0  # a syntax error


def test_the_code_of_a_markdown_reply_is_run() -> None:
    reply = (
        "Sure! Here is the function:\n\n```python\n" + SOLUTION + "```\n\n"
        "Example:\n\n```python\n>>> add(1, 2)\n3\n```\n\nRun it with:\n```bash\npython add.py\n```"
    )
    assert extract_code(reply) == SOLUTION
    assert grade(reply, TESTS, "code") == 1.0
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```py\nx = 1\n```\n```python\ny = 2\n```") == "x = 1\n\ny = 2\n"


def test_common_libraries_and_the_own_directory_work() -> None:
    code = """
        import asyncio, dataclasses, json, os, tempfile
        import numpy as np

        @dataclasses.dataclass
        class Point:
            x: int

        async def twice(v):
            return 2 * v

        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "p.json"), "w") as f:
                json.dump({"x": 3}, f)
            with open(os.path.join(d, "p.json")) as f:
                p = Point(**json.load(f))
        total = int(np.arange(4).sum())
    """
    tests = "assert p == Point(3) and total == 6 and asyncio.run(twice(2)) == 4"
    assert run(code, tests).reason == "passed"


def test_an_endless_loop_times_out() -> None:
    result = run("while True:\n    pass\n", "", timeout_s=2)
    assert (result.passed, result.reason) == (False, "timeout")
    assert result.duration_s >= 2.0
    assert grade("import time\ntime.sleep(60)", "", "code", timeout_s=1) == 0.0


def test_a_memory_bomb_fails() -> None:
    result = run("blocks = []\nwhile True:\n    blocks.append(bytearray(2**24))\n", memory_mb=256)
    assert (result.passed, result.reason) == (False, "memory")
    assert run("x = bytearray(2**40)", "assert True").reason == "memory"
    assert grade("x = 'a' * 10**10", "assert len(x) > 0", "code", memory_mb=256) == 0.0


@pytest.mark.usefixtures("isolation")
def test_removing_files_outside_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("precious")
    answers = [
        f"import shutil\nshutil.rmtree({str(sentinel)!r})\n",
        f"import os\nos.remove({str(sentinel / 'keep.txt')!r})\n",
        f"import os\nos.rename({str(sentinel / 'keep.txt')!r}, 'mine.txt')\n",
        f"import os\nos.chmod({str(sentinel)!r}, 0)\n",
        # caught by the answer: still refused, and still a failed run
        f"import os\ntry:\n    os.unlink({str(sentinel / 'keep.txt')!r})\n"
        "except OSError:\n    pass\n",
    ]
    for answer in answers:
        result = run(answer + SOLUTION, TESTS)
        assert not result.passed
        assert result.reason.startswith("blocked: "), result
        assert grade(answer + SOLUTION, TESTS, "code") == 0.0
    assert (sentinel / "keep.txt").read_text() == "precious"
    assert os.access(sentinel, os.W_OK)


@pytest.mark.usefixtures("isolation")
def test_writing_outside_is_refused_and_inside_is_allowed(tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    outside = run(f"open({str(target)!r}, 'w').write('x')\n" + SOLUTION, TESTS)
    assert outside.reason.startswith("blocked: open for writing")
    link = f"import os\nos.symlink({str(tmp_path)!r}, 'out')\nopen('out/written.txt', 'w')\n"
    assert run(link + SOLUTION, TESTS).reason.startswith("blocked: open for writing")
    assert not target.exists()
    inside = (
        "with open('notes.txt', 'w') as f:\n    f.write('ok')\nimport os\nos.remove('notes.txt')\n"
    )
    assert run(inside + SOLUTION, TESTS).reason == "passed"


@pytest.mark.usefixtures("isolation")
def test_network_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        port = server.getsockname()[1]
        answer = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'leak')\n"
        )
        result = run(answer + SOLUTION, TESTS)
        assert not result.passed
        assert result.reason.startswith("blocked: socket.")
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever connected
    lookup = run("import socket\nsocket.getaddrinfo('localhost', 80)\n" + SOLUTION, TESTS)
    assert lookup.reason == "blocked: socket.getaddrinfo"


@pytest.mark.usefixtures("isolation")
def test_new_processes_are_refused(tmp_path: Path) -> None:
    made = tmp_path / "made"
    answers = {
        f"import os\nos.system('touch {made}')\n": "blocked: os.system",
        f"import subprocess\nsubprocess.run(['touch', '{made}'])\n": "blocked: subprocess.Popen",
        f"import os\nos.execv('/bin/touch', ['touch', {str(made)!r}])\n": "blocked: os.exec",
        "import os\nif os.fork() == 0:\n    os._exit(0)\n": "blocked: os.fork",
        "import multiprocessing as mp\nmp.Process(target=print).start()\n": "blocked: os.fork",
        "import os, signal\nos.kill(os.getppid(), signal.SIGTERM)\n": "blocked: os.kill",
        "import ctypes\nctypes.CDLL(None).system(b'true')\n": "blocked: ctypes.dlsym",
    }
    for answer, reason in answers.items():
        result = run(answer + SOLUTION, TESTS)
        assert (result.passed, result.reason) == (False, reason), answer
    assert not made.exists()


def test_an_answer_that_exits_early_fails() -> None:
    for exit_call in (
        "import sys\nsys.exit(0)\n",
        "import os\nos._exit(0)\n",
        "raise SystemExit\n",
    ):
        result = run(SOLUTION + exit_call, TESTS + "assert False\n")
        assert (result.passed, result.reason) == (False, "failed")


def test_the_run_is_isolated_and_cleaned_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXLLM_PROBE_SECRET", "s3cret")
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    code = """
        import os, sys
        here = os.getcwd()
        print(here)
    """
    tests = """
        assert "MIXLLM_PROBE_SECRET" not in os.environ
        assert "PYTHONPATH" not in os.environ and "/nowhere" not in sys.path
        assert os.environ["HOME"] == os.environ["TMPDIR"] == here
        assert not any("proxy" in k.lower() for k in os.environ)
        assert __name__ == "solution"
        assert sys.stdin.read() == ""
    """
    result = run(code, tests)
    assert result.reason == "passed", result.output
    here = result.output.strip()
    assert Path(here).name.startswith("mixllm-grade-")
    assert not Path(here).exists()


def test_output_is_limited() -> None:
    result = run("import sys\nsys.stdout.write('x' * 40 * 2**20)\n", "")
    assert not result.passed
    assert "File too large" in result.output
    assert len(result.output) <= 4096


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="timeout_s=0"):
        run_code_tests("", "", timeout_s=0)
    with pytest.raises(ConfigError, match="memory_mb=16"):
        run_code_tests("", "", memory_mb=16)


def test_runs_from_several_threads_at_once() -> None:
    """As in the gateway's thread pool: concurrent runs keep their own directories and limits."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [(SOLUTION, TESTS, "passed"), (SOLUTION.replace("+", "-"), TESTS, "failed")] * 3
    cases.append(("while True:\n    pass\n", "", "timeout"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda c: run(c[0], c[1], timeout_s=2), cases))
    assert [r.reason for r in runs] == [reason for _, _, reason in cases]


def test_the_process_cap_counts_this_users_threads() -> None:
    count = sandbox._count_tasks(os.getuid())
    assert count is None or count >= 1  # None without /proc
