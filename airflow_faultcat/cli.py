"""The ``faultcat`` command line.

``faultcat diagnose``   say why a task failed, from its log (and optionally its FailureContext)
``faultcat patterns``   list or validate pattern files
``faultcat schema``     print the JSON Schema of a model
``faultcat scrub``      print a text with its secrets scrubbed
``faultcat spool``      list or replay failures spooled while the API server was unreachable

Errors in the input (missing, unreadable, empty or binary files, broken pattern files) print one
clear ``faultcat: error: ...`` line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

_BINARY_SNIFF = 8192


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
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            _fail(f"{name}: no such file")
        except OSError as exc:
            _fail(f"cannot read {name}: {exc.strerror or exc}")
    return stream


def _sniff(stream: BinaryIO, name: str, *, allow_empty: bool) -> bytes:
    """Read the head of ``stream``; reject binary data and (unless allowed) empty input."""
    try:
        head = stream.read(_BINARY_SNIFF)
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror or exc}")
    if not head and not allow_empty:
        _fail(f"{name} is empty: there is no log to diagnose")
    if b"\0" in head:
        _fail(f"{name} looks like a binary file (it contains NUL bytes), not a text log")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is fine; garbage earlier is not.
        if exc.start < len(head) - 4:
            bad = sum(1 for b in head if b < 9 or 13 < b < 32)
            if bad > len(head) // 100:
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

    try:
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
    if args.json:
        print(diagnosis.model_dump_json(indent=2, exclude_none=True))
    else:
        from airflow_faultcat.core.report import render_diagnosis

        print(render_diagnosis(diagnosis))
    return EXIT_OK


def _cmd_patterns_validate(args: argparse.Namespace) -> int:
    from airflow_faultcat.core.patterns.loader import validate_files

    count, problems = validate_files(args.paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    where = ", ".join(args.paths) if args.paths else "the shipped library"
    if problems:
        print(f"{len(problems)} problem(s) in {count} pattern(s) of {where}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {count} pattern(s) in {where}")
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
        entries = spool.pending(folder)
        for entry in entries:
            ctx = entry.conf
            print(f"{entry.dag_run_id}  {ctx.get('dag_id')}.{ctx.get('task_id')} try {ctx.get('try_number')}")
        print(f"{len(entries)} spooled failure(s) in {folder or spool.spool_dir()}")
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

    scrub = sub.add_parser("scrub", help="print a text with secrets replaced by ***")
    scrub.add_argument("file", nargs="?", default="-", metavar="FILE", help="file, or - for stdin")
    scrub.add_argument("--secret", action="append", metavar="VALUE", help="a known secret to remove too")
    scrub.set_defaults(func=_cmd_scrub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``faultcat`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"faultcat: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `faultcat diagnose big.log | head` must not print a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
