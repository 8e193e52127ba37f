"""Benchmark: the analyzer against GNU ``grep -E -i -c -f`` (and ripgrep) on the same patterns and log.

Generates an Airflow 3 style task log (JSON lines, rare errors taken from the pattern library's
examples, a failure with ``error_detail`` at the end) of 200 MB, one of 1 MB and an empty file,
then, in this one run and on the same files, compares two ways:

- **scan against scan**: the analyzer's :meth:`~airflow_faultcat.core.diagnose.Analyzer.diagnose_file`
  timed inside a child process that has already loaded the library (as in a worker), against
  ``grep -E -i -c -f PATTERNS LOG`` less grep's own start-up and compile of the same patterns,
  measured on the empty file;
- **end to end**: the whole ``faultcat diagnose LOG`` process (Python start-up, imports, the
  library load, the compiled patterns read from their cache, the scan, the report) against the
  whole grep process.

``rg -i -c -f`` (ripgrep, with the library's regexes as they are) is added to both when it is
installed. grep's output goes to a file: to /dev/null GNU grep stops at the first match. grep and
rg count the lines any regex matches (they stop at a line's first match); the analyzer finds every
regex matching each line. The analyzer's peak RSS is the child's (``os.wait4``).

Each figure is the median of ``--repeat`` runs with a warm page cache. The last lines are
``diagnose_vs_grep_scan_ratio: X.XX`` and ``diagnose_vs_grep_end_to_end_ratio: X.XX`` (and the
same for ``rg`` when it ran); above 1.00 the analyzer is faster.

Usage: ``python bench/diagnose.py [--size-mb 200] [--repeat 3] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOISE = [
    '{{"timestamp":"{ts}","level":"info","event":"Filling up the DagBag from /opt/airflow/dags/etl_{n}.py","logger":"airflow.models.dagbag.DagBag"}}',
    '{{"timestamp":"{ts}","level":"info","event":"Executing <Task(PythonOperator): transform_{n}> on 2026-11-20 00:00:00+00:00","logger":"task"}}',
    '{{"timestamp":"{ts}","level":"info","event":"Processed batch {n} of 4096: 10000 rows written to warehouse.events_{n}","logger":"etl.load"}}',
    '{{"timestamp":"{ts}","level":"debug","event":"GET https://api.internal.example/v1/items?page={n} -> 200 in 41 ms","logger":"httpx"}}',
    '{{"timestamp":"{ts}","level":"info","event":"Pushing xcom","ti":"RuntimeTaskInstance(id=019a-{n}, task_id=extract, dag_id=etl)","logger":"task"}}',
    '{{"timestamp":"{ts}","level":"warning","event":"Batch {n} retried once after a slow response (1.2 s)","logger":"etl.extract"}}',
    '{{"timestamp":"{ts}","level":"info","event":"Checksum sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 verified for part-{n}.parquet","logger":"etl.verify"}}',
    "[{ts}] {{taskinstance.py:1234}} INFO - Dependencies all met for dep_context=non-requeueable deps ti=<TaskInstance: etl.load_{n} manual__2026-11-20T00:00:00+00:00 [queued]>",
    "[{ts}] {{subprocess.py:93}} INFO - rsync: sent {n} bytes  received 35 bytes  2048.00 bytes/sec",
    "[{ts}] {{logging_mixin.py:190}} INFO - Loaded {n} rows from s3://data-lake/raw/2026/11/20/part-{n}.json",
]

FAILURE_TAIL = [
    '{{"timestamp":"{ts}","level":"error","event":"Task failed with exception","logger":"task","error_detail":'
    '[{{"exc_type":"OperationalError","exc_value":"connection to server at \\"db.internal\\" (10.0.0.5), port 5432 '
    'failed: FATAL:  password authentication failed for user \\"etl\\"","exc_notes":[],"syntax_error":null,'
    '"is_cause":false,"frames":[{{"filename":"/opt/airflow/dags/etl.py","lineno":42,"name":"load"}}],'
    '"is_group":false,"exceptions":[]}}]}}',
    '{{"timestamp":"{ts}","level":"info","event":"Marking task as FAILED.","dag_id":"etl","task_id":"load","logger":"task"}}',
]


def generate(path: Path, size_bytes: int, examples: list[str], seed: int = 7) -> tuple[int, int]:
    """Write an Airflow-style log of about ``size_bytes`` with rare error lines; return (lines, errors)."""
    rng = random.Random(seed)
    lines = errors = written = 0
    ts = "2026-11-20T03:14:15.926535Z"
    with path.open("w", encoding="utf-8") as out:
        buf: list[str] = []
        while written < size_bytes:
            if rng.random() < 0.00005 and examples:  # about one line in 20,000
                line = rng.choice(examples)
                errors += 1
            else:
                line = rng.choice(NOISE).format(ts=ts, n=rng.randrange(100000))
            buf.append(line)
            written += len(line) + 1
            lines += 1
            if len(buf) >= 10000:
                out.write("\n".join(buf) + "\n")
                buf.clear()
        buf.extend(t.format(ts=ts) for t in FAILURE_TAIL)
        lines += len(FAILURE_TAIL)
        out.write("\n".join(buf) + "\n")
    return lines, errors


CHILD = r"""
import json, sys, time
from airflow_faultcat.core.diagnose import Analyzer
from airflow_faultcat.core.patterns.loader import load_library
analyzer = Analyzer(load_library())
times = []
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    d = analyzer.diagnose_file(path)
    times.append(time.perf_counter() - t0)
print(json.dumps({"seconds": times, "root_cause": d.root_cause.value, "engine": d.stats.engine,
                  "lines": d.stats.lines_scanned,
                  "findings": sum(f.occurrences for f in d.findings)}))
"""


def _wait(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; return its peak RSS in MiB."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024


def run_child(args: list[str]) -> tuple[dict, float]:
    """Run the analyzer in a child process; return its JSON report and peak RSS in MiB."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    peak = _wait(proc)
    if proc.returncode:
        raise SystemExit(f"analyzer child failed with status {proc.returncode}")
    return json.loads(out), peak


def faultcat_command() -> list[str]:
    """The project's ``faultcat`` console script next to this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("faultcat")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "airflow_faultcat.cli"]


def run_faultcat(log: Path) -> tuple[float, float]:
    """``faultcat diagnose LOG`` as a whole process; return (seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*faultcat_command(), "diagnose", str(log)], stdout=subprocess.DEVNULL)
    peak = _wait(proc)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"faultcat diagnose {log} failed with status {proc.returncode}")
    return elapsed, peak


def grep_regexes(patterns) -> list[str]:
    """The library's regexes in ERE form (the dialect is already grep-friendly)."""
    out = []
    for p in patterns:
        for r in p.regexes:
            out.append(r.replace("(?:", "(").replace("\\d", "[0-9]"))
    return out


def run_counter(argv: list[str], log: Path, out_file: Path) -> tuple[float, str]:
    """Run a whole ``grep``/``rg`` process counting matching lines of ``log``; (seconds, count)."""
    t0 = time.perf_counter()
    with out_file.open("w") as out:
        proc = subprocess.run(
            [*argv, str(log)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
        )
    elapsed = time.perf_counter() - t0
    if proc.returncode > 1:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.strip()[:500]}")
    return elapsed, out_file.read_text().strip() or "0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from airflow_faultcat.core.patterns.loader import load_library

    library = load_library()
    examples = [e for p in library.patterns for e in p.examples]
    regexes = grep_regexes(library.patterns)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faultcat-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    big, small, empty = workdir / "big.log", workdir / "small.log", workdir / "empty.log"
    pattern_file, counter_out = workdir / "patterns.ere", workdir / "counter.out"
    pattern_file.write_text("\n".join(regexes) + "\n")
    rg_patterns = workdir / "patterns.re2"
    rg_patterns.write_text("\n".join(r for p in library.patterns for r in p.regexes) + "\n")
    empty.write_bytes(b"")

    counters = {"grep": ["grep", "-E", "-i", "-c", "-f", str(pattern_file)]}
    rg = shutil.which("rg")
    if rg:
        counters["rg"] = [rg, "--no-config", "-i", "-c", "-f", str(rg_patterns)]

    t0 = time.perf_counter()
    big_lines, big_errors = generate(big, args.size_mb * 1_000_000, examples)
    small_lines, _ = generate(small, 1_000_000, examples, seed=11)
    print(
        f"generated {big.stat().st_size / 1e6:.0f} MB ({big_lines} lines, {big_errors} rare errors) "
        f"and {small.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"patterns: {len(library)} ({len(regexes)} regexes); grep: {shutil.which('grep')}; "
        f"rg: {rg or 'not installed'}; faultcat: {' '.join(faultcat_command())}"
    )

    # Warm the page cache and the compiled-pattern cache.
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)
    run_child([str(small)])
    run_faultcat(small)

    size_mb = big.stat().st_size / (1 << 20)
    ours, rss, ends, end_rss, starts = [], [], [], [], []
    whole: dict[str, list[float]] = {name: [] for name in counters}
    startup: dict[str, list[float]] = {name: [] for name in counters}
    counts: dict[str, str] = {}
    report: dict = {}
    for _ in range(args.repeat):
        report, peak = run_child([str(big)])
        ours.append(report["seconds"][0])
        rss.append(peak)
        elapsed, peak = run_faultcat(big)
        ends.append(elapsed)
        end_rss.append(peak)
        starts.append(run_faultcat(small)[0])
        for name, argv in counters.items():
            elapsed, counts[name] = run_counter(argv, big, counter_out)
            whole[name].append(elapsed)
            startup[name].append(run_counter(argv, empty, counter_out)[0])
    small_report, _ = run_child([str(small)] * (2 * args.repeat + 1))
    small_ms = statistics.median(small_report["seconds"]) * 1000

    t_ours, t_end = statistics.median(ours), statistics.median(ends)
    t_start = statistics.median(starts)

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"  {label:<46} {size_mb / seconds:8.1f} MiB/s {seconds:8.3f} s  {note}".rstrip())

    print(f"\nscan against scan ({size_mb:.0f} MiB log, median of {args.repeat}):")
    line(
        f"analyzer ({report['engine']}), library loaded",
        t_ours,
        f"root_cause {report['root_cause']}, matched lines {report['findings']}",
    )
    scan: dict[str, float] = {}
    for name, argv in counters.items():
        t_whole, t_empty = statistics.median(whole[name]), statistics.median(startup[name])
        scan[name] = max(t_whole - t_empty, 1e-9)
        note = f"{t_whole:.3f} s less {t_empty:.3f} s on the empty file; matching lines {counts[name]}"
        line(f"{name} {' '.join(argv[1:-1])}, less start-up", scan[name], note)
    print("end to end (whole processes):")
    line("faultcat diagnose", t_end, f"the 1 MB log takes {t_start:.3f} s")
    for name, argv in counters.items():
        line(f"{name} {' '.join(argv[1:-1])}", statistics.median(whole[name]))
    print(
        f"analyzer peak RSS on the {size_mb:.0f} MiB log: {max(rss):.1f} MiB "
        f"(faultcat diagnose, whole: {max(end_rss):.1f} MiB)"
    )
    print(f"1 MB log diagnosed in {small_ms:.1f} ms (median, library loaded)")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    for name in counters:
        print(f"diagnose_vs_{name}_scan_ratio: {scan[name] / t_ours:.2f}")
        print(f"diagnose_vs_{name}_end_to_end_ratio: {statistics.median(whole[name]) / t_end:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
