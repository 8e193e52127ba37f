"""The ``faultcat`` command line.

``faultcat diagnose``   say why a task failed, from its log (and optionally its FailureContext)
``faultcat patterns``   list or validate pattern files
``faultcat schema``     print the JSON Schema of a model
``faultcat scrub``      print a text with its secrets scrubbed
``faultcat spool``      list or replay failures spooled while the API server was unreachable
``faultcat history``    fingerprints seen, with occurrences and flake status (``--flaky``)
``faultcat triage``     regression / stable / known failures against a baseline run or window
``faultcat quarantine`` add, list or remove quarantined fingerprints
``faultcat explore``    diagnose, then test each finding with read-only probes run here

``history``, ``triage`` and ``quarantine`` read faultcat's Redis: ``--redis-url``, else
``FAULTCAT_REDIS_URL``, else the ``AIRFLOW_CONN_REDIS_DEFAULT`` connection (URI or JSON).

Errors in the input (missing, unreadable, empty or binary files, broken pattern files) print one
clear ``faultcat: error: ...`` line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, NoReturn

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

_BINARY_SNIFF = 8192
#: A FailureContext file larger than this is refused (the analyzer reads its exception whole).
MAX_CONTEXT_BYTES = 16 << 20


class CliError(Exception):
    """An input problem reported as one line, exit status 2."""


def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _pattern_paths(args: argparse.Namespace) -> list[str]:
    from airflow_faultcat import conf

    return [*conf.pattern_paths(), *(args.patterns or [])]


def _open_input(name: str) -> BinaryIO:
    """Open a file (or ``-`` for standard input) for binary reading, checking it is a text log."""
    if name == "-":
        stream: BinaryIO = sys.stdin.buffer
    else:
        path = Path(name)
        if path.is_dir():
            _fail(f"{name} is a folder, not a log file")
        _require_regular_file(path, name)
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            _fail(f"{name}: no such file")
        except OSError as exc:
            _fail(f"cannot read {name}: {exc.strerror or exc}")
    return stream


def _require_regular_file(path: Path, name: str) -> None:
    """Refuse a FIFO, a device or a socket: reading one may block forever or never end."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # opening it says so
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror or exc}")
    if not stat.S_ISREG(mode) and str(path) != os.devnull:  # the null device ends at once
        _fail(f"{name} is not a regular file (a FIFO, device or socket): give a file, or - for stdin")


def _sniff(stream: BinaryIO, name: str, *, allow_empty: bool) -> bytes:
    """Read the head of ``stream``; reject binary data and (unless allowed) empty input."""
    try:
        head = stream.read(_BINARY_SNIFF)
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror or exc}")
    if not head and not allow_empty:
        _fail(f"{name} is empty: there is no log to diagnose")
    # NUL bytes alone do not make a binary file: copytruncate rotation leaves a run of them
    # before the text. What is left without them decides.
    text = head.replace(b"\0", b"")
    control = sum(1 for b in text if b < 9 or 13 < b < 32)
    if control > len(text) // 100:
        _fail(f"{name} looks like a binary file, not a text log")
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is fine; garbage earlier is not.
        if exc.start < len(text) - 4:
            _fail(f"{name} looks like a binary file, not a text log")
    return head


class _Prefixed:
    """A readable stream that first returns ``head``, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)


def _load_context(path: str | None):
    if path is None:
        return None
    from pydantic import ValidationError

    from airflow_faultcat.core.models import FailureContext

    _require_regular_file(Path(path), f"context file {path}")
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONTEXT_BYTES:
            _fail(f"context file {path} has {size} bytes; a FailureContext is at most {MAX_CONTEXT_BYTES}")
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"context file {path}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read context file {path}: {exc}")
    try:
        return FailureContext.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "document"
        _fail(f"context file {path} is not a FailureContext: {loc}: {first['msg']}")


def _cmd_diagnose(args: argparse.Namespace) -> int:
    diagnosis = _diagnose_input(args)
    if args.json:
        print(diagnosis.model_dump_json(indent=2, exclude_none=True))
    else:
        from airflow_faultcat.core.report import render_diagnosis

        print(render_diagnosis(diagnosis))
    return EXIT_OK


def _diagnose_input(args: argparse.Namespace):
    """The Diagnosis of ``args.log`` (``-``: stdin) with ``args.context``."""
    from airflow_faultcat.core.diagnose import Analyzer
    from airflow_faultcat.core.patterns.loader import PatternLibraryError, load_library

    context = _load_context(args.context)
    name = args.log
    stream = _open_input(name)
    try:
        has_exception = bool(context and (context.exception_message or context.traceback))
        head = _sniff(stream, "standard input" if name == "-" else name, allow_empty=has_exception)
        try:
            library = load_library(_pattern_paths(args))
        except PatternLibraryError as exc:
            _fail(str(exc))
        from airflow_faultcat import conf

        try:
            analyzer = Analyzer(
                library,
                engine=args.engine,
                min_score=conf.get_float("min_score"),
                evidence_per_pattern=conf.get_int("evidence_per_pattern"),
            )
        except ValueError as exc:
            _fail(str(exc))
        diagnosis = analyzer.diagnose(_Prefixed(head, stream), context=context)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return diagnosis


def _cmd_patterns_validate(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.patterns.loader import validate_files

    count, problems = validate_files(args.paths)
    where = ", ".join(args.paths) if args.paths else "the shipped library"
    signals = ""
    if not args.paths:  # the shipped signal tables are part of the shipped library
        from airflow_faultcat.core.patterns.signals import SignalTableError, check_signals, load_signals

        try:
            tables = load_signals()
        except SignalTableError as exc:
            problems.extend(exc.problems)
            tables = []
        for table in tables:
            problems.extend(check_signals(table))
        signals = f" and {sum(len(t.entries) for t in tables)} signal entries in {len(tables)} tables"
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {count} pattern(s){signals} of {where}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {count} pattern(s){signals} in {where}")
    return EXIT_OK


def _cmd_patterns_list(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.patterns.loader import PatternLibraryError, load_library

    try:
        library = load_library(_pattern_paths(args))
    except PatternLibraryError as exc:
        _fail(str(exc))
    rows = [p for p in library.patterns if not args.category or p.category.value == args.category.upper()]
    if args.json:
        out = [
            {
                **p.model_dump(mode="json", exclude={"examples", "counterexamples"}),
                "source": library.sources[p.pattern_id],
            }
            for p in rows
        ]
        print(json.dumps(out, indent=2))
        return EXIT_OK
    width = max((len(p.pattern_id) for p in rows), default=10)
    for p in rows:
        print(f"{p.pattern_id:<{width}}  {p.category.value:<19} {p.severity.value:<8} {p.description}")
    print(f"{len(rows)} pattern(s)")
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.models import SCHEMAS, json_schema

    if args.name is None:
        print("\n".join(sorted(SCHEMAS)))
        return EXIT_OK
    try:
        schema = json_schema(args.name)
    except KeyError as exc:
        _fail(exc.args[0])
    print(json.dumps(schema, indent=2))
    return EXIT_OK


def _cmd_scrub(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.scrub import Scrubber

    known = [s for s in (args.secret or []) if s]
    scrubber = Scrubber(known)
    name = args.file
    stream = _open_input(name)
    try:
        head = _sniff(stream, "standard input" if name == "-" else name, allow_empty=True)
        text = (head + stream.read()).decode("utf-8", errors="replace")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    sys.stdout.write(scrubber.scrub(text))
    return EXIT_OK


def _cmd_spool(args: argparse.Namespace) -> int:
    from airflow_faultcat import spool

    folder = Path(args.spool_dir) if args.spool_dir else None
    if args.spool_command == "list":
        for where, entries in (
            ("Redis", spool.pending_redis()),
            (str(folder or spool.spool_dir()), spool.pending(folder)),
        ):
            for entry in entries:
                ctx = entry.conf
                task = f"{ctx.get('dag_id')}.{ctx.get('task_id')}"
                print(f"{entry.dag_run_id}  {task} try {ctx.get('try_number')}")
            print(f"{len(entries)} spooled failure(s) in {where}")
        return EXIT_OK
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    hook = AirflowApiHook(args.conn_id, timeout=10)
    try:
        sent, kept = spool.replay(hook, folder)
    finally:
        hook.close()
    for run_id in sent:
        print(f"sent {run_id}")
    for run_id, error in kept:
        print(f"kept {run_id}: {error}", file=sys.stderr)
    print(f"{len(sent)} sent, {len(kept)} kept")
    return EXIT_PROBLEMS if kept else EXIT_OK


# -- explore ----------------------------------------------------------------------------------


def explore_diagnosis(diagnosis, *, per_probe: float = 2.0, total: float = 10.0):
    """Run the probes of every finding here, once each; return (updated diagnosis, results)."""
    from airflow_faultcat.core.probes.catalogue import explore
    from airflow_faultcat.hooks.probes import probe_diagnosis

    planned, results, note = probe_diagnosis(diagnosis, per_probe=per_probe, total=total)
    pairs = [(index, results[spec]) for index, spec in planned]
    return explore(diagnosis, pairs, ceiling_note=note), list(results.values())


def _cmd_explore(args: argparse.Namespace) -> int:
    import time

    args.engine = "auto"
    if args.log is None:
        if args.context is None:
            _fail("give --context FILE, --log FILE, or both")
        args.log = os.devnull
    started = time.monotonic()
    diagnosis = _diagnose_input(args)
    explored, results = explore_diagnosis(diagnosis, per_probe=args.probe_timeout, total=args.timeout)
    spent = time.monotonic() - started
    if args.json:
        print(
            json.dumps(
                {
                    "probes": [r.model_dump(mode="json") for r in results],
                    "diagnosis": explored.model_dump(mode="json", exclude_none=True),
                    "seconds": round(spent, 3),
                },
                indent=2,
            )
        )
        return EXIT_OK
    from airflow_faultcat.core.report import render_diagnosis

    print(f"{'STATUS':<14} {'PROBE':<12} {'MS':>6}  CALL / OUTPUT")
    for r in results:
        print(f"{r.status:<14} {r.spec.kind:<12} {r.duration_ms:>6.0f}  {r.call}")
        print(f"{'':<35}{r.output[:160]}")
    if not results:
        print("(no probe applies to these findings and targets)")
    print()
    print(render_diagnosis(explored))
    print(f"explored in {spent:.2f} s")
    return EXIT_OK


# -- failure intelligence ---------------------------------------------------------------------


def _redis_url(args: argparse.Namespace) -> str:
    """The Redis URL: ``--redis-url``, ``FAULTCAT_REDIS_URL`` or ``AIRFLOW_CONN_REDIS_DEFAULT``."""
    url = getattr(args, "redis_url", None) or os.environ.get("FAULTCAT_REDIS_URL")
    if url:
        return url
    raw = os.environ.get("AIRFLOW_CONN_REDIS_DEFAULT", "").strip()
    if not raw:
        _fail("no Redis: give --redis-url, or set FAULTCAT_REDIS_URL or AIRFLOW_CONN_REDIS_DEFAULT")
    if raw.startswith("{"):
        try:
            conn = json.loads(raw)
        except ValueError as exc:
            _fail(f"AIRFLOW_CONN_REDIS_DEFAULT is not valid JSON: {exc}")
        db = (conn.get("extra") or {}).get("db", 0)
        auth = f":{conn['password']}@" if conn.get("password") else ""
        return f"redis://{auth}{conn.get('host') or 'localhost'}:{conn.get('port') or 6379}/{db}"
    return raw


def _history(args: argparse.Namespace):
    import redis

    from airflow_faultcat import conf
    from airflow_faultcat.history import FailureHistory

    url = _redis_url(args)
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        scheme, _, rest = url.partition("://")
        shown = f"{scheme}://{rest.rpartition('@')[2]}" if rest else url  # no password in errors
        _fail(f"Redis at {shown}: {exc}")
    try:
        return FailureHistory(
            client,
            conf.redis_key_prefix(),
            retention_seconds=conf.history_retention_seconds(),
            settings=conf.flake_settings(),
        )
    except ValueError as exc:
        _fail(str(exc))


def _duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` -> a timedelta."""
    units = {"m": 60, "h": 3600, "d": 86400}
    try:
        value, unit = float(text[:-1]), text[-1].lower()
        if unit not in units or value <= 0:
            raise ValueError
    except (ValueError, IndexError):
        _fail(f"{text!r} is not a duration like 30m, 24h or 7d")
    return timedelta(seconds=value * units[unit])


def _cmd_history(args: argparse.Namespace) -> int:
    history = _history(args)
    records = history.records(dag_id=args.dag)
    if args.flaky:
        records = [r for r in records if r.status == "flaky"]
    if args.json:
        print(json.dumps([r.model_dump(mode="json", exclude={"events"}) for r in records], indent=2))
        return EXIT_OK
    print(
        f"{'FINGERPRINT':<20} {'STATUS':<8} {'SEEN':>5} {'FLAKES':>6} {'LAST SEEN':<20} "
        "TASK / ROOT CAUSE / BASIS"
    )
    for r in records:
        q = ""
        if r.quarantine:
            q = " [quarantined]" if r.quarantine.active() else " [quarantine expired]"
        print(
            f"{r.fingerprint:<20} {r.status:<8} {r.occurrences:>5} {r.pass_on_retry:>6} "
            f"{r.last_seen.strftime('%Y-%m-%d %H:%M:%S'):<20} {r.dag_id}.{r.task_id} {r.root_cause} "
            f"{r.basis[:70]}{q}"
        )
        if r.status in ("flaky", "broken"):
            print(f"{'':<20} {r.flake_class if r.status == 'flaky' else ''} {r.status_reason}")
    print(f"{len(records)} fingerprint(s)")
    return EXIT_OK


def _summaries(records: dict) -> dict:
    from airflow_faultcat.core.triage import FailureSummary

    return {
        fid: FailureSummary(
            fingerprint=fid,
            dag_id=r.dag_id,
            task_id=r.task_id,
            root_cause=r.root_cause,
            severity=r.severity,
            count=r.occurrences,
            basis=r.basis,
        )
        for fid, r in records.items()
    }


def _cmd_triage(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.triage import triage

    history = _history(args)
    if args.run:
        if not args.dag:
            _fail("--run needs --dag")
        current = {f: history.get(f) for f in history.run_fingerprints(args.dag, args.run)}
        baseline = {f: history.get(f) for f in history.run_fingerprints(args.dag, args.baseline)}
        for found in (current, baseline):
            for fid in [f for f, r in found.items() if r is None]:
                del found[fid]
            for fid, r in found.items():
                found[fid] = r.model_copy(update={"occurrences": 1})
        labels = (f"DagRun {args.run}", f"DagRun {args.baseline}")
    else:
        window = _duration(args.baseline)
        now = datetime.now(timezone.utc)
        current = history.failures_between(now - window, now, args.dag)
        baseline = history.failures_between(now - 2 * window, now - window, args.dag)
        scope = f" of {args.dag}" if args.dag else ""
        labels = (f"last {args.baseline}{scope}", f"the {args.baseline} before{scope}")
    report = triage(
        _summaries(current), _summaries(baseline), current_label=labels[0], baseline_label=labels[1]
    )
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(f"{report.status}: {report.current} against {report.baseline}")
        for c in report.changes:
            f = c.failure
            print(
                f"  {c.kind:<9} {f.fingerprint} {f.severity or '-':<8} now {c.count_now:>3} before "
                f"{c.count_before:>3}  {f.dag_id}.{f.task_id} {f.root_cause} {f.basis[:60]}"
            )
    # A regression fails a pipeline step that runs this.
    return EXIT_PROBLEMS if report.status == "regression" else EXIT_OK


def _cmd_quarantine(args: argparse.Namespace) -> int:
    history = _history(args)
    if args.quarantine_command == "add":
        expires = args.expires
        try:
            if expires[-1:].lower() in ("m", "h", "d") and expires[:-1].replace(".", "", 1).isdigit():
                expires_at = datetime.now(timezone.utc) + _duration(expires)
            else:
                expires_at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
            entry = history.quarantine_add(
                args.fingerprint, owner=args.owner, reason=args.reason, expires_at=expires_at
            )
        except ValueError as exc:
            _fail(f"quarantine {args.fingerprint}: {exc}")
        if history.get(args.fingerprint) is None:
            print(f"note: {args.fingerprint} is not in the history (yet)", file=sys.stderr)
        print(
            f"quarantined {entry.fingerprint} until {entry.expires_at.isoformat()} "
            f"({entry.owner}: {entry.reason})"
        )
        return EXIT_OK
    if args.quarantine_command == "remove":
        if not history.quarantine_remove(args.fingerprint):
            _fail(f"{args.fingerprint} is not quarantined")
        print(f"removed {args.fingerprint}")
        return EXIT_OK
    entries = history.quarantine_list()
    now = datetime.now(timezone.utc)
    for e in entries:
        state = "active " if e.active(now) else "EXPIRED"
        print(f"{state} {e.fingerprint} until {e.expires_at.isoformat()}  {e.owner}: {e.reason}")
    expired = sum(not e.active(now) for e in entries)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {expired} expired (no longer applied)")
    return EXIT_OK


def _cmd_canary(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.invariants import describe

    if args.canary_command == "list":
        for inv in describe():
            print(f"{inv['id']}  {inv['severity']:<8} {inv['name']}  [{', '.join(inv['sources'])}]")
            print(f"       runbook: {inv['runbook']}")
        return EXIT_OK
    # A cycle reads Airflow connections: this needs the Airflow installation it watches.
    from airflow_faultcat.operators.canary import report_table, run_cycle

    try:
        report, alerts = run_cycle(
            faultcat_api_conn_id=args.api_conn_id,
            redis_conn_id=args.redis_conn_id,
            docker_conn_id=args.docker_conn_id,
            persist=not args.no_persist,
            alert=not args.no_alert,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({**report.model_dump(mode="json"), "alerts": alerts}, indent=2))
    else:
        print(report_table(report))
    return 1 if report.violations else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the ``faultcat`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="faultcat",
        description="Diagnose failed Airflow tasks from their logs; manage the pattern library.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    diagnose = sub.add_parser("diagnose", help="say why a task failed, with evidence lines")
    diagnose.add_argument("log", nargs="?", default="-", metavar="LOG", help="task log file, or - for stdin")
    diagnose.add_argument("--json", action="store_true", help="print the Diagnosis as JSON")
    diagnose.add_argument("--context", metavar="FILE", help="a FailureContext JSON file (exception, ids)")
    diagnose.add_argument("--patterns", action="append", metavar="PATH", help="extra pattern file or folder")
    diagnose.add_argument(
        "--engine", choices=["auto", "hyperscan", "re2"], default="auto", help=argparse.SUPPRESS
    )
    diagnose.set_defaults(func=_cmd_diagnose)

    patterns = sub.add_parser("patterns", help="list or validate pattern files")
    psub = patterns.add_subparsers(dest="patterns_command", required=True, metavar="ACTION")
    validate = psub.add_parser("validate", help="check pattern files (default: the shipped library)")
    validate.add_argument("paths", nargs="*", metavar="PATH")
    validate.set_defaults(func=_cmd_patterns_validate)
    listing = psub.add_parser("list", help="list the patterns in force")
    listing.add_argument("--category", help="only this category")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--patterns", action="append", metavar="PATH", help="extra pattern file or folder")
    listing.set_defaults(func=_cmd_patterns_list)

    schema = sub.add_parser("schema", help="print a model's JSON Schema (no NAME: list the names)")
    schema.add_argument("name", nargs="?", metavar="NAME")
    schema.set_defaults(func=_cmd_schema)

    spool_parser = sub.add_parser("spool", help="failures waiting for the API server (list, replay)")
    ssub = spool_parser.add_subparsers(dest="spool_command", required=True, metavar="ACTION")
    for name, text in (("list", "list the spooled failures"), ("replay", "trigger their recovery runs now")):
        action = ssub.add_parser(name, help=text)
        action.add_argument("--spool-dir", help="default: [faultcat] spool_dir")
        action.add_argument("--conn-id", default="faultcat_api_default", help="the faultcat_api connection")
        action.set_defaults(func=_cmd_spool)

    explore_p = sub.add_parser(
        "explore", help="diagnose, then test each finding with read-only probes run here"
    )
    explore_p.add_argument("--context", metavar="FILE", help="a FailureContext JSON file (exception, ids)")
    explore_p.add_argument("--log", metavar="FILE", help="the task log (- for stdin)")
    explore_p.add_argument("--json", action="store_true", help="print the probes and the Diagnosis as JSON")
    explore_p.add_argument("--patterns", action="append", metavar="PATH", help="extra pattern file or folder")
    explore_p.add_argument("--timeout", type=float, default=10.0, help="seconds for all probes (default 10)")
    explore_p.add_argument("--probe-timeout", type=float, default=2.0, help="seconds per probe (default 2)")
    explore_p.set_defaults(func=_cmd_explore)

    scrub = sub.add_parser("scrub", help="print a text with secrets replaced by ***")
    scrub.add_argument("file", nargs="?", default="-", metavar="FILE", help="file, or - for stdin")
    scrub.add_argument("--secret", action="append", metavar="VALUE", help="a known secret to remove too")
    scrub.set_defaults(func=_cmd_scrub)

    def redis_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--redis-url", help="faultcat's Redis (default: FAULTCAT_REDIS_URL, AIRFLOW_CONN_REDIS_DEFAULT)"
        )

    history = sub.add_parser("history", help="fingerprints seen, with occurrences and flake status")
    history.add_argument("--dag", help="only this Dag")
    history.add_argument("--flaky", action="store_true", help="only flaky fingerprints")
    history.add_argument("--json", action="store_true")
    redis_arg(history)
    history.set_defaults(func=_cmd_history)

    triage_p = sub.add_parser(
        "triage", help="regression, stable or known failures only, against a baseline (exit 1: regression)"
    )
    triage_p.add_argument(
        "--baseline",
        required=True,
        metavar="RUN|WINDOW",
        help="a DagRun id (with --run) or a window: 24h, 7d",
    )
    triage_p.add_argument("--dag", help="the Dag (needed with --run)")
    triage_p.add_argument("--run", help="the DagRun compared with the baseline DagRun")
    triage_p.add_argument("--json", action="store_true")
    redis_arg(triage_p)
    triage_p.set_defaults(func=_cmd_triage)

    canary = sub.add_parser("canary", help="Airflow's own health: the canary invariants")
    csub = canary.add_subparsers(dest="canary_command", required=True)
    csub.add_parser("list", help="the invariants, their sources and runbook hints").set_defaults(
        func=_cmd_canary
    )
    run = csub.add_parser(
        "run",
        help="run one cycle here and print the report (exit 1 when a violation is open)",
        description="Reads Airflow's connections: run it where Airflow (and its connections) is set up.",
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument("--api-conn-id", default="faultcat_api_default", help="the faultcat_api connection")
    run.add_argument("--redis-conn-id", default=None, help="default: [faultcat] redis_conn_id")
    run.add_argument("--docker-conn-id", default=None, help="default: [faultcat] docker_conn_id")
    run.add_argument("--no-persist", action="store_true", help="do not record fired/cleared in Redis")
    run.add_argument("--no-alert", action="store_true", help="do not post to Slack")
    run.set_defaults(func=_cmd_canary)

    quarantine = sub.add_parser("quarantine", help="fingerprints diagnosed and recorded but not escalated")
    qsub = quarantine.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")
    add = qsub.add_parser("add", help="quarantine a fingerprint (at most 30 days)")
    add.add_argument("fingerprint", metavar="FINGERPRINT")
    add.add_argument("--owner", required=True, help="who owns the fix")
    add.add_argument("--reason", required=True, help="why (a ticket, a known bug)")
    add.add_argument("--expires", required=True, help="a duration (7d, 12h) or an ISO time with zone")
    remove = qsub.add_parser("remove", help="lift a quarantine")
    remove.add_argument("fingerprint", metavar="FINGERPRINT")
    listing_q = qsub.add_parser("list", help="active and expired entries")
    for q in (add, remove, listing_q):
        redis_arg(q)
        q.set_defaults(func=_cmd_quarantine)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``faultcat`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        from airflow_faultcat.core.scrub import Scrubber

        # An error can quote its input (a pattern file, a context): one line, scrubbed like any output.
        line = " ".join(str(exc).split())
        print(f"faultcat: error: {Scrubber().scrub_cut(line, 2000)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `faultcat diagnose big.log | head` must not print a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        print("faultcat: error: the input is nested too deeply to read", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("faultcat: error: out of memory reading the input", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
