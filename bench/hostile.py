"""Hostile inputs: each one through the real ``faultcat`` command, timed and measured.

Builds every case in a temp folder and runs ``faultcat diagnose`` (or ``faultcat scrub``) on it in a
child process of its own, measuring its wall time and peak RSS (``os.wait4``). A finished case is
compared with the same command on a *normal* log of the same size (the generator of
``bench/diagnose.py``: Airflow 3 JSON lines with rare errors and a failure at the end).

Budget (the issue's): a hostile input finishes within 2x the time of the normal log of its size,
under 150 MB of peak RSS, or is refused with exactly one ``faultcat: error: ...`` line on stderr
(exit status 2, no traceback). A timeout, a crash, a traceback or a refusal of more than one line
misses it; so does a refusal where a diagnosis was expected (a log after copytruncate), a finish
where a refusal was (YAML aliases, a FailureContext over the cap), or a secret left in the output.

The cases: a log line that repeats a matching phrase (4 MB, and ``--size-mb``); a FailureContext
whose exception message is just under the 16 MiB cap, and one over it (``--size-mb``, at least
17 MiB); 200k indented traceback headers; JSON nested 5,000 deep in log lines; ``password=`` with a
4.5 MB value through ``scrub`` and ``diagnose``; YAML aliases (billion laughs), 1,000 nested groups,
an oversized file and a backtracking-bomb regex in a user pattern file; a FIFO as the log and as
``--context``; ``/dev/zero`` as ``--context``, as the log and through a symlink; a FailureContext
nested 5,000 deep; a run of NULs before a normal log (copytruncate); a ``--size-mb`` log with no
newline at all; many short matching lines (the library's examples); one error line repeated (a
retry loop); error lines no pattern matches (the learned fallback answers); a progress bar of
``\\r``; invalid UTF-8 (``diagnose`` and ``scrub``); a JSON-escaped lone surrogate (``\\ud800``, all
ASCII) in a log line and in a FailureContext.

The last line is ``hostile_cases_failed: N of M``; the exit status is 1 when any case misses its
budget. ``--quick`` uses small sizes (what ``tests/unit/test_hostile_inputs.py`` runs).

Usage: ``python bench/hostile.py [--quick] [--size-mb 200] [--timeout 120] [--repeat 1]
[--only NAME] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
#: The issue's budget.
MAX_RATIO = 2.0
MAX_PEAK_MB = 150.0
#: A safety rail, not the budget: a child that expands a bomb stops at this address space.
DEFAULT_MEMORY_LIMIT_MB = 4096
#: How much of a child's output is kept for the checks.
MAX_STDOUT = 64 << 20


def _bench_diagnose():
    """bench/diagnose.py as a module (its normal-log generator)."""
    spec = importlib.util.spec_from_file_location("_bench_diagnose", Path(__file__).with_name("diagnose.py"))
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def cli_command() -> list[str]:
    """The project's ``faultcat`` console script next to this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("faultcat")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "airflow_faultcat.cli"]


# -- what a case is -------------------------------------------------------------------------------
@dataclass
class Sizes:
    big: int  # the --size-mb inputs
    medium: int  # the "4 MB" inputs
    tracebacks: int  # indented traceback headers
    password_value: int  # the value after password=


def sizes(quick: bool, size_mb: int | None) -> Sizes:
    if quick:
        return Sizes(big=(size_mb or 8) * MB, medium=1 * MB, tracebacks=20_000, password_value=4_500_000)
    return Sizes(big=(size_mb or 200) * MB, medium=4 * MB, tracebacks=200_000, password_value=4_500_000)


@dataclass
class Prepared:
    """A built case: the arguments after ``faultcat``, and what the budget compares it with."""

    args: list[str]
    size: int  # bytes of hostile input
    stdin: Path | None = None
    #: (command, size) of the normal log it is compared with; None: none (a refusal is expected).
    baseline: tuple[str, int] | None = None
    #: Arguments run once first and not measured (a user pattern file compiles its patterns once).
    warmup: list[str] | None = None
    #: Looks at stdout of a finished run; returns what is wrong, or None.
    check: Callable[[bytes], str | None] | None = None


@dataclass
class Case:
    name: str
    command: str  # "diagnose" or "scrub"
    expect: str  # "finished", "refused" or "either"
    build: Callable[[Path, Sizes, Workspace], Prepared]


@dataclass
class Workspace:
    """What the builders share: the library's examples and a normal log per size."""

    work: Path
    examples: list[str]
    generate: Callable[..., tuple[int, int]]
    _normal: dict[int, Path] = field(default_factory=dict)

    def normal_log(self, size: int) -> Path:
        """A normal log of ``size`` bytes (at most one kept at a time: they can be large)."""
        if size not in self._normal:
            for old in self._normal.values():
                old.unlink(missing_ok=True)
            self._normal.clear()
            path = self.work / f"normal-{size}.log"
            self.generate(path, size, self.examples)
            self._normal[size] = path
        return self._normal[size]

    def tiny_log(self) -> Path:
        path = self.work / "tiny.log"
        if not path.exists():
            path.write_text("ERROR - OSError: [Errno 28] No space left on device\n")
        return path


# -- builders -------------------------------------------------------------------------------------
PHRASE = b'psycopg2.OperationalError: FATAL:  password authentication failed for user "etl"; '


def _write_repeated(path: Path, unit: bytes, size: int, prefix: bytes = b"", suffix: bytes = b"") -> int:
    """Write ``prefix``, ``unit`` repeated to about ``size`` bytes, then ``suffix``; return the size."""
    chunk = unit * max(1, (1 << 20) // len(unit))
    with path.open("wb") as out:
        out.write(prefix)
        written = len(prefix)
        while written + len(chunk) <= size:
            out.write(chunk)
            written += len(chunk)
        rest = max(0, (size - written) // len(unit))
        out.write(unit * rest)
        out.write(suffix)
    return path.stat().st_size


def _transform(src: Path, dst: Path, fn: Callable[[bytes], bytes]) -> int:
    with src.open("rb") as inp, dst.open("wb") as out:
        while block := inp.read(1 << 20):
            out.write(fn(block))
    return dst.stat().st_size


def _expect_root_cause(category: str) -> Callable[[bytes], str | None]:
    def check(stdout: bytes) -> str | None:
        try:
            found = json.loads(stdout)["root_cause"]
        except (ValueError, KeyError, TypeError):
            return "stdout is not a Diagnosis"
        return None if found == category else f"root cause {found}, expected {category}"

    return check


def _secret_absent(secret: bytes) -> Callable[[bytes], str | None]:
    def check(stdout: bytes) -> str | None:
        return "the password value is in the output" if secret in stdout else None

    return check


def repeat_line(size_of: Callable[[Sizes], int]) -> Callable[[Path, Sizes, Workspace], Prepared]:
    def build(d: Path, s: Sizes, c: Workspace) -> Prepared:
        log = d / "repeat.log"
        size = _write_repeated(log, PHRASE, size_of(s), suffix=b"\n")
        return Prepared([str(log)], size, baseline=("diagnose", size))

    return build


def _context_file(path: Path, size: int) -> int:
    head = (
        b'{"dag_id":"etl","task_id":"load","exception_type":"psycopg2.OperationalError","exception_message":"'
    )
    unit = PHRASE.replace(b'"', b"'")
    return _write_repeated(path, unit, size - len(head) - 2, prefix=head, suffix=b'"}')


def _context_cap() -> int:
    """The FailureContext cap of ``faultcat diagnose --context``."""
    from airflow_faultcat.cli import MAX_CONTEXT_BYTES

    return MAX_CONTEXT_BYTES


def context_under_cap(d: Path, s: Sizes, c: Workspace) -> Prepared:
    ctx = d / "context.json"
    size = _context_file(ctx, _context_cap() - 4096)
    assert size <= _context_cap()
    return Prepared(
        ["--json", "--context", str(ctx), "-"],
        size,
        baseline=("diagnose", size),
        check=_expect_root_cause("CREDENTIAL"),
    )


def context_over_cap(d: Path, s: Sizes, c: Workspace) -> Prepared:
    ctx = d / "context.json"
    size = _context_file(ctx, max(_context_cap() + (1 << 20), s.big))
    return Prepared(["--context", str(ctx), "-"], size)


def traceback_headers(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = d / "tracebacks.log"
    size = _write_repeated(log, b"    Traceback (most recent call last):\n", s.tracebacks * 39)
    return Prepared([str(log)], size, baseline=("diagnose", size))


def nested_json(d: Path, s: Sizes, c: Workspace) -> Prepared:
    depth = 5000
    ts = b'{"timestamp":"2026-11-20T03:14:15.926535Z","level":"error",'
    lines = [
        # error_detail nested in lists
        ts + b'"event":"Task failed with exception","error_detail":' + b"[" * depth + b"]" * depth + b"}\n",
        # an event nested in objects
        ts
        + b'"event":'
        + b'{"a":' * depth
        + b'"OSError: [Errno 28] No space left on device"'
        + b"}" * depth
        + b"}\n",
        # an exception deep in a chain of exception groups
        ts
        + b'"event":"Task failed with exception","error_detail":['
        + b'{"exc_type":"ExceptionGroup","exc_value":"g","exceptions":[' * depth
        + b'{"exc_type":"OSError","exc_value":"[Errno 28] No space left on device"}'
        + b"]}" * depth
        + b"]}\n",
    ]
    log = d / "nested.log"
    size = _write_repeated(log, b"".join(lines), s.medium)
    return Prepared([str(log)], size, baseline=("diagnose", size))


def _password_file(d: Path, s: Sizes) -> tuple[Path, bytes]:
    rng = random.Random(5)
    value = "".join(rng.choices(string.ascii_letters + string.digits, k=s.password_value)).encode()
    log = d / "password.log"
    log.write_bytes(b"[2026-11-20T03:14:15] {db.py:42} INFO - connecting with password=" + value + b"\n")
    return log, value[:64]


def password_scrub(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log, secret = _password_file(d, s)
    size = log.stat().st_size
    return Prepared([str(log)], size, baseline=("scrub", size), check=_secret_absent(secret))


def password_diagnose(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log, secret = _password_file(d, s)
    size = log.stat().st_size
    return Prepared(["--json", str(log)], size, baseline=("diagnose", size), check=_secret_absent(secret))


PATTERN_HEAD = """family: hostile
description: a user pattern file
"""


def _pattern(regex: str, examples: str = "['timeout here']", counter: str = "['all good']") -> str:
    return f"""  - pattern_id: hostile_001
    category: TIMEOUT
    severity: low
    regexes: ['{regex}']
    description: a user pattern.
    examples: {examples}
    counterexamples: {counter}
"""


def billion_laughs(d: Path, s: Sizes, c: Workspace) -> Prepared:
    folder = d / "patterns"
    folder.mkdir()
    lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lol.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = PATTERN_HEAD + "\n".join(lol) + "\npatterns:\n" + _pattern("timeout", examples="*i")
    (folder / "laughs.yaml").write_text(text)
    return Prepared(["--patterns", str(folder), str(c.tiny_log())], len(text))


def nested_groups(d: Path, s: Sizes, c: Workspace) -> Prepared:
    path = d / "groups.yaml"
    text = PATTERN_HEAD + "patterns:\n" + _pattern("(" * 1000 + "timeout" + ")" * 1000)
    path.write_text(text)
    return Prepared(["--patterns", str(path), str(c.tiny_log())], len(text))


def big_pattern_file(d: Path, s: Sizes, c: Workspace) -> Prepared:
    path = d / "big.yaml"
    text = PATTERN_HEAD.replace("a user pattern file", "x" * (5 * MB)) + "patterns:\n" + _pattern("timeout")
    path.write_text(text)
    return Prepared(["--patterns", str(path), str(c.tiny_log())], len(text))


def backtracking_regex(d: Path, s: Sizes, c: Workspace) -> Prepared:
    path = d / "redos.yaml"
    path.write_text(PATTERN_HEAD + "patterns:\n" + _pattern("(a+)+$", examples="['xaaaa']", counter="['b']"))
    log = d / "redos.log"
    size = _write_repeated(log, b"a", s.medium, suffix=b"!\n")
    args = ["--patterns", str(path), str(log)]
    return Prepared(
        args, size, baseline=("diagnose", size), warmup=["--patterns", str(path), str(c.tiny_log())]
    )


def fifo_log(d: Path, s: Sizes, c: Workspace) -> Prepared:
    fifo = d / "pipe.log"
    os.mkfifo(fifo)
    return Prepared([str(fifo)], 0)


def fifo_context(d: Path, s: Sizes, c: Workspace) -> Prepared:
    fifo = d / "pipe.json"
    os.mkfifo(fifo)
    return Prepared(["--context", str(fifo), str(c.tiny_log())], 0)


def dev_zero_context(d: Path, s: Sizes, c: Workspace) -> Prepared:
    return Prepared(["--context", "/dev/zero", str(c.tiny_log())], 0)


def dev_zero_log(d: Path, s: Sizes, c: Workspace) -> Prepared:
    return Prepared(["/dev/zero"], 0)


def dev_zero_symlink(d: Path, s: Sizes, c: Workspace) -> Prepared:
    link = d / "zero.log"
    link.symlink_to("/dev/zero")
    return Prepared([str(link)], 0)


def nested_context(d: Path, s: Sizes, c: Workspace) -> Prepared:
    ctx = d / "nested.json"
    depth = 5000
    ctx.write_bytes(
        b'{"dag_id":"etl","exception_type":"OSError",'
        b'"exception_message":"[Errno 28] No space left on device","extra":'
        + b'{"a":' * depth
        + b"1"
        + b"}" * depth
        + b"}"
    )
    return Prepared(
        ["--context", str(ctx), str(c.tiny_log())],
        ctx.stat().st_size,
        baseline=("diagnose", ctx.stat().st_size),
    )


def nul_run(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = d / "rotated.log"
    half = s.medium // 2
    normal = c.normal_log(half)
    with log.open("wb") as out:
        out.write(b"\0" * half)
        out.write(normal.read_bytes())
    size = log.stat().st_size
    return Prepared(
        ["--json", str(log)], size, baseline=("diagnose", size), check=_expect_root_cause("CREDENTIAL")
    )


def no_newline(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = d / "one-line.log"
    size = _transform(c.normal_log(s.big), log, lambda b: b.replace(b"\n", b" "))
    return Prepared([str(log)], size, baseline=("diagnose", size))


def many_matching_lines(d: Path, s: Sizes, c: Workspace) -> Prepared:
    rng = random.Random(3)
    lines = [e.encode("utf-8") + b"\n" for e in c.examples if "\n" not in e]
    rng.shuffle(lines)
    log = d / "matches.log"
    size = _write_repeated(log, b"".join(lines), s.medium)
    return Prepared([str(log)], size, baseline=("diagnose", size))


def one_error_repeated(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = d / "retry-loop.log"
    unit = (
        b"[2026-11-20T03:14:15.926+0000] {http.py:88} ERROR - "
        b"ConnectionRefusedError: [Errno 111] Connection refused\n"
    )
    size = _write_repeated(log, unit, s.medium)
    return Prepared([str(log)], size, baseline=("diagnose", size))


def unmatched_error_lines(d: Path, s: Sizes, c: Workspace) -> Prepared:
    rng = random.Random(4)
    words = ["frobnicator", "spline", "flux capacitor", "widget", "gizmo", "doohickey", "sprocket"]
    lines = [
        f"[2026-11-20T03:14:15.926+0000] {{task.py:{n}}} ERROR - "
        f"the {rng.choice(words)} failed to reticulate {rng.choice(words)} {n}\n".encode()
        for n in range(500)
    ]
    log = d / "unmatched.log"
    size = _write_repeated(log, b"".join(lines), s.medium)
    return Prepared([str(log)], size, baseline=("diagnose", size))


def carriage_returns(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = d / "progress.log"
    unit = b"\rDownloading part-00042.parquet:  57%|#####     | 57/100 [00:03<00:02, 19.1it/s]"
    size = _write_repeated(
        log, unit, s.medium, suffix=b"\nERROR - OSError: [Errno 28] No space left on device\n"
    )
    return Prepared([str(log)], size, baseline=("diagnose", size))


#: Latin-1 and cp1252 text, a lone continuation byte, a surrogate, an overlong and a cut sequence.
_BAD_UTF8 = [b"\xe9", b"\x96", b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82"]


def _invalid_utf8_file(d: Path, s: Sizes, c: Workspace) -> Path:
    """A normal log whose lines after the first 16 KiB each carry invalid UTF-8 inside their text
    (before the first space past the middle: in a JSON line, inside a string), so the sniff passes."""
    normal = c.normal_log(s.medium).read_bytes()
    head, rest = normal[: 16 << 10], normal[16 << 10 :]
    rng = random.Random(9)
    lines = []
    for line in rest.split(b"\n"):
        at = line.find(b" ", len(line) // 2)
        at = len(line) if at < 0 else at
        lines.append(line[:at] + rng.choice(_BAD_UTF8) + line[at:] if line else line)
    log = d / "latin.log"
    log.write_bytes(head + b"\n".join(lines))
    return log


SURROGATE_LINE = (
    b'{"timestamp":"2026-11-20T03:14:15.926535Z","level":"error","event":"Task failed with exception",'
    b'"error_detail":[{"exc_type":"OSError","exc_value":"[Errno 28] No space left on device \\ud800",'
    b'"frames":[]}]}\n'
)


def lone_surrogate_log(d: Path, s: Sizes, c: Workspace) -> Prepared:
    """All ASCII: a JSON escape of a lone surrogate in an ``error_detail`` line."""
    log = d / "surrogate.log"
    log.write_bytes(c.normal_log(s.medium).read_bytes() + SURROGATE_LINE)
    size = log.stat().st_size
    return Prepared([str(log)], size, baseline=("diagnose", size))


def lone_surrogate_context(d: Path, s: Sizes, c: Workspace) -> Prepared:
    ctx = d / "surrogate.json"
    ctx.write_bytes(b'{"exception_type":"OSError","exception_message":"[Errno 28] No space left \\ud800"}')
    return Prepared(["--context", str(ctx), str(c.tiny_log())], ctx.stat().st_size)


def invalid_utf8(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = _invalid_utf8_file(d, s, c)
    size = log.stat().st_size
    return Prepared(
        ["--json", str(log)], size, baseline=("diagnose", size), check=_expect_root_cause("CREDENTIAL")
    )


def invalid_utf8_scrub(d: Path, s: Sizes, c: Workspace) -> Prepared:
    log = _invalid_utf8_file(d, s, c)
    size = log.stat().st_size
    return Prepared([str(log)], size, baseline=("scrub", size))


def _big_mb(s: Sizes) -> str:
    return f"{s.big // MB}mb"


def cases(s: Sizes) -> list[Case]:
    """Every case, named for the sizes ``s``."""
    return [
        Case(
            f"repeat_phrase_line_{s.medium // MB}mb", "diagnose", "finished", repeat_line(lambda z: z.medium)
        ),
        Case(f"repeat_phrase_line_{_big_mb(s)}", "diagnose", "finished", repeat_line(lambda z: z.big)),
        Case("context_just_under_cap", "diagnose", "finished", context_under_cap),
        Case("context_over_cap", "diagnose", "refused", context_over_cap),
        Case(f"traceback_headers_{s.tracebacks // 1000}k", "diagnose", "finished", traceback_headers),
        Case("json_nested_5000", "diagnose", "finished", nested_json),
        Case("password_4.5mb_value_scrub", "scrub", "finished", password_scrub),
        Case("password_4.5mb_value_diagnose", "diagnose", "finished", password_diagnose),
        Case("patterns_yaml_aliases", "diagnose", "refused", billion_laughs),
        Case("patterns_1000_nested_groups", "diagnose", "refused", nested_groups),
        Case("patterns_file_5mb", "diagnose", "refused", big_pattern_file),
        Case("patterns_backtracking_regex", "diagnose", "finished", backtracking_regex),
        Case("fifo_as_log", "diagnose", "refused", fifo_log),
        Case("fifo_as_context", "diagnose", "refused", fifo_context),
        Case("dev_zero_as_context", "diagnose", "refused", dev_zero_context),
        Case("dev_zero_as_log", "diagnose", "refused", dev_zero_log),
        Case("symlink_to_dev_zero_as_log", "diagnose", "refused", dev_zero_symlink),
        Case("context_nested_5000", "diagnose", "either", nested_context),
        Case("nul_run_then_log", "diagnose", "finished", nul_run),
        Case(f"no_newline_{_big_mb(s)}", "diagnose", "finished", no_newline),
        Case("many_short_matching_lines", "diagnose", "finished", many_matching_lines),
        Case("one_error_line_repeated", "diagnose", "finished", one_error_repeated),
        Case("error_lines_no_pattern_matches", "diagnose", "finished", unmatched_error_lines),
        Case("carriage_return_progress_bar", "diagnose", "finished", carriage_returns),
        Case("invalid_utf8", "diagnose", "finished", invalid_utf8),
        Case("json_lone_surrogate_escape", "diagnose", "finished", lone_surrogate_log),
        Case("context_lone_surrogate_escape", "diagnose", "either", lone_surrogate_context),
        Case("invalid_utf8_scrub", "scrub", "finished", invalid_utf8_scrub),
    ]


def case_names(quick: bool = True, size_mb: int | None = None) -> list[str]:
    return [case.name for case in cases(sizes(quick, size_mb))]


# -- running --------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    peak_mb: float
    returncode: int | None  # None: killed by a signal
    timed_out: bool
    stdout: bytes
    stderr: str


# A small Python process forks and execs the command and reports its child's peak RSS: a child
# forked from this process (a big pytest worker, say) would count this process's pages as its own.
_SPAWNER = """
import json, os, resource, sys
limit, peak_file, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
pid = os.fork()
if pid == 0:
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execvp(cmd[0], cmd)
_, status, usage = os.wait4(pid, 0)
with open(peak_file, "w") as f:
    json.dump([usage.ru_maxrss, status], f)
sys.exit(0)
"""


def run_cli(args: list[str], *, stdin: Path | None, timeout: float, work: Path, memory_limit_mb: int) -> Run:
    """Run ``faultcat ARGS`` in a child process; its wall time and peak RSS (``wait4`` in a small
    spawner, so the peak is the command's own)."""
    out_path, err_path = work / "child.stdout", work / "child.stderr"
    peak_path = work / "child.peak"
    peak_path.unlink(missing_ok=True)
    with (
        out_path.open("wb") as out,
        err_path.open("wb") as err,
        open(stdin or os.devnull, "rb") as inp,
    ):
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _SPAWNER, str(memory_limit_mb << 20), str(peak_path)]
            + [*cli_command(), *args],
            stdin=inp,
            stdout=out,
            stderr=err,
            cwd=ROOT,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        seconds = time.perf_counter() - started
    maxrss, status = 0, 9  # killed: no report from the spawner
    with contextlib.suppress(OSError, ValueError):
        maxrss, status = json.loads(peak_path.read_text())
    code = None if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
    with err_path.open("rb") as f:
        stderr = f.read(1 << 16).decode("utf-8", "replace")
    with out_path.open("rb") as f:
        stdout = f.read(MAX_STDOUT)
    out_path.unlink()
    err_path.unlink()
    return Run(seconds, maxrss * 1024 / MB, code, timed_out, stdout, stderr)


@dataclass
class Result:
    name: str
    command: str
    expect: str
    size: int
    outcome: str  # "finished", "refused" or "FAILED: ..."
    seconds: float
    peak_mb: float
    baseline: float | None = None
    baseline_peak_mb: float | None = None
    message: str = ""  # the refusal line, or what went wrong
    check: str | None = None  # what the case's own check found wrong in the output
    problems: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.seconds / self.baseline if self.baseline else None

    @property
    def ok(self) -> bool:
        return not self.problems


def classify(run: Run, timeout: float) -> tuple[str, str]:
    """(outcome, message) of a run."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if run.timed_out:
        return f"FAILED: timeout after {timeout:.0f} s (killed)", ""
    if run.returncode is None:
        return "FAILED: killed by a signal", run.stderr[-300:]
    if "Traceback (most recent call last)" in run.stderr:
        return "FAILED: traceback", lines[-1] if lines else ""
    if run.returncode == 0:
        if lines:
            return f"FAILED: {len(lines)} stderr line(s) on success", lines[0]
        return "finished", ""
    if run.returncode == 2 and lines and lines[0].startswith("faultcat: error: "):
        if len(lines) == 1:
            return "refused", lines[0]
        return f"FAILED: error of {len(lines)} stderr lines", " | ".join(lines[:3])
    return f"FAILED: exit status {run.returncode}", lines[0] if lines else ""


def judge(result: Result, prepared: Prepared, run: Run) -> None:
    """Fill ``result.problems``: where the case misses its budget."""
    p = result.problems
    if result.outcome.startswith("FAILED"):
        p.append(result.outcome[len("FAILED: ") :])
    elif result.expect == "finished" and result.outcome == "refused":
        p.append("refused, expected a diagnosis")
    elif result.expect == "refused" and result.outcome == "finished":
        p.append("finished, expected a refusal")
    if result.peak_mb >= MAX_PEAK_MB:
        p.append(f"peak {result.peak_mb:.0f} MB >= {MAX_PEAK_MB:.0f} MB")
    if result.outcome == "finished":
        if result.ratio is not None and result.ratio > MAX_RATIO:
            p.append(f"{result.ratio:.2f}x the normal log's time > {MAX_RATIO:.0f}x")
        if prepared.check:
            result.check = prepared.check(run.stdout)
            if result.check:
                p.append(result.check)


def run_cases(
    *,
    quick: bool = False,
    size_mb: int | None = None,
    timeout: float = 120.0,
    repeat: int = 1,
    only: list[str] | None = None,
    workdir: Path | None = None,
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
    echo: Callable[[str], None] = lambda line: None,
) -> list[Result]:
    """Build and run every case (or those whose name contains one of ``only``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from airflow_faultcat.core.patterns.loader import load_library

    bench = _bench_diagnose()
    library = load_library()
    work = Path(workdir or tempfile.mkdtemp(prefix="faultcat-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    ws = Workspace(work, [e for p in library.patterns for e in p.examples], bench.generate)
    s = sizes(quick, size_mb)

    def measure(command: str, args: list[str], stdin: Path | None) -> tuple[Run, float, float]:
        runs = [
            run_cli(
                [command, *args], stdin=stdin, timeout=timeout, work=work, memory_limit_mb=memory_limit_mb
            )
            for _ in range(max(1, repeat))
        ]
        return runs[-1], statistics.median(r.seconds for r in runs), max(r.peak_mb for r in runs)

    baselines: dict[tuple[str, int], tuple[float, float]] = {}

    def baseline(key: tuple[str, int]) -> tuple[float, float]:
        command, size = key
        size = int(float(f"{size:.2g}"))  # sizes within a few percent share one normal log
        key = (command, size)
        if key not in baselines:
            run, seconds, peak = measure(command, [str(ws.normal_log(size))], None)
            if run.returncode != 0:
                raise SystemExit(f"the normal log of {size} bytes failed: {run.stderr.strip()[-300:]}")
            baselines[key] = (seconds, peak)
        return baselines[key]

    results = []
    try:
        # Compile (or load) the library's patterns once, so that no case pays for it.
        run_cli(["diagnose", str(ws.tiny_log())], stdin=None, timeout=timeout, work=work, memory_limit_mb=0)
        for case in cases(s):
            name, command = case.name, case.command
            if only and not any(o in name for o in only):
                continue
            folder = work / name
            folder.mkdir()
            prepared = case.build(folder, s, ws)
            base = baseline(prepared.baseline) if prepared.baseline else None
            if prepared.warmup:
                run_cli(
                    [command, *prepared.warmup], stdin=None, timeout=timeout, work=work, memory_limit_mb=0
                )
            run, seconds, peak = measure(command, prepared.args, prepared.stdin)
            outcome, message = classify(run, timeout)
            result = Result(
                name,
                command,
                case.expect,
                prepared.size,
                outcome,
                seconds,
                peak,
                base[0] if base else None,
                base[1] if base else None,
                message,
            )
            judge(result, prepared, run)
            results.append(result)
            echo(row(result))
            if workdir is None:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return results


# -- report ---------------------------------------------------------------------------------------
HEADER = (
    f"{'case':<32} {'command':<8} {'input':>9} {'outcome':<32} {'time s':>7} {'base s':>7} "
    f"{'ratio':>6} {'peak MB':>8}  verdict"
)


def _size(n: int) -> str:
    if n == 0:
        return "-"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    return f"{n / 1000:.1f} kB"


def row(r: Result) -> str:
    base = f"{r.baseline:7.2f}" if r.baseline else f"{'-':>7}"
    ratio = f"{r.ratio:6.2f}" if r.ratio is not None and r.outcome == "finished" else f"{'-':>6}"
    verdict = "ok" if r.ok else "MISSED: " + "; ".join(r.problems)
    return (
        f"{r.name:<32} {r.command:<8} {_size(r.size):>9} {r.outcome[:32]:<32} {r.seconds:7.2f} {base} "
        f"{ratio} {r.peak_mb:8.1f}  {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument(
        "--size-mb", type=int, default=None, help="size of the big cases (default 200, --quick 8)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case is killed")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case and baseline (median time)")
    parser.add_argument("--only", action="append", help="run the cases whose name contains this")
    parser.add_argument("--workdir", type=Path, default=None, help="build here and keep it")
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        default=DEFAULT_MEMORY_LIMIT_MB,
        help="address-space limit of each child (a safety rail; 0: none)",
    )
    args = parser.parse_args()

    s = sizes(args.quick, args.size_mb)
    print(f"faultcat: {' '.join(cli_command())}; big cases {s.big / MB:.0f} MB, timeout {args.timeout:.0f} s")
    print(
        f"budget: <= {MAX_RATIO:.0f}x the time of a normal log of the same size and < {MAX_PEAK_MB:.0f} MB "
        "peak RSS, or refused with one 'faultcat: error:' line"
    )
    print(HEADER)
    results = run_cases(
        quick=args.quick,
        size_mb=args.size_mb,
        timeout=args.timeout,
        repeat=args.repeat,
        only=args.only,
        workdir=args.workdir,
        memory_limit_mb=args.memory_limit_mb,
        echo=lambda line: print(line, flush=True),
    )
    messages = [r for r in results if r.message]
    if messages:
        print("\nstderr (first line) of refusals and failures:")
        for r in messages:
            print(f"  {r.name}: {r.message[:200]}")
    failed = [r for r in results if not r.ok]
    print(f"hostile_cases_failed: {len(failed)} of {len(results)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
