"""Signal tables: structured vocabularies that mean the same thing whatever the wording around them.

A pattern recognises a sentence; a *signal* recognises a code a library or a protocol puts in its
errors: an exception class and its bases, an errno, an HTTP status, a SQLSTATE, a gRPC status, an
exit code or a signal, a Kubernetes container reason, a libvirt ``VIR_ERR_*`` code, an AWS, Azure
or GCP error code. One YAML file per kind, beside the pattern library (``signals/*.yaml``)::

    kind: errno                         # the table's name, lowercase
    description: POSIX errno names and Linux numbers, as Python's OSError prints them.
    weight: 0.72                        # specificity of a hit (patterns range 0.5-1.0)
    case_sensitive: true                # how ``reads`` match
    reads:                              # RE2, capture groups: the key; {keys} = the keys
      - '\\[Errno (-?[0-9]+)\\]'
      - '\\b({keys})\\b'
    scan: []                            # optional: cheaper regexes that find the lines (default: reads)
    class_key: none                     # none | first2 (SQLSTATE class) | first1xx (HTTP class)
    symptom: false                      # true: the kind names what happened, not why
    entries:
      - key: ENOSPC
        aliases: ['28']
        category: STORAGE
        description: No space left on device.
        examples: ['Error: ENOSPC: no space left on device, write']

An entry may also say ``generic: true`` (a broad value such as ``ValueError``: it weighs like a
generic pattern). An entry whose ``category`` is empty is read but decides nothing by itself; an
exception entry then takes the category of its nearest base that has one (``bases`` are
qualified class names of the same table). The analyzer scans the ``scan`` (else ``reads``)
regexes in its one linear-time pass and scores a signal hit like a pattern hit of the table's
``weight``: a specific pattern wins, and a signal decides when no pattern does. Every entry's
examples are tested (``check_signals``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_faultcat.core.models import Category, Severity

#: Folder of the shipped signal tables (one YAML file per kind).
SIGNALS_DIR = Path(__file__).parent / "signals"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: How many base classes an exception is followed through before giving up (a cycle guard).
_MAX_BASE_DEPTH = 12
#: How many distinct texts :meth:`SignalReader.read` remembers its answer for (the latest used):
#: a log repeats its lines, and reading one runs every table's regexes.
READ_CACHE_SIZE = 4096


class SignalEntry(BaseModel):
    """One value of a signal table and what it means.

    :param key: the value as the log writes it (``ENOSPC``, ``503``, ``08006``,
        ``botocore.exceptions.NoCredentialsError``).
    :param aliases: other spellings of the same value (an errno's number, a short class name).
    :param category: the root-cause category it points to; empty when it is too broad to decide.
    :param bases: for exception classes, the qualified names of the direct bases in this table.
    :param description: one line saying what the value means.
    :param severity: how bad such a failure usually is.
    :param services_affected: lowercase service names.
    :param recovery_hint: one sentence for a human.
    :param generic: a broad value (``ValueError``, a 4xx class) that weighs like a generic pattern.
    :param examples: log lines the table must read this entry from (>= 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    category: Category | None = None
    bases: list[str] = Field(default_factory=list)
    description: str = Field(min_length=1)
    severity: Severity = Severity("medium")
    services_affected: list[str] = Field(default_factory=list)
    recovery_hint: str = ""
    generic: bool = False
    examples: list[str] = Field(min_length=1)

    @field_validator("category")
    @classmethod
    def _not_unknown(cls, value: Category | None) -> Category | None:
        if value is Category.UNKNOWN:
            raise ValueError("UNKNOWN is not a signal category; leave category empty instead")
        return value


class SignalTable(BaseModel):
    """One kind of signal: how to read it from a line, and its entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    weight: float = Field(gt=0.0, le=1.0)
    case_sensitive: bool = False
    reads: list[str] = Field(min_length=1)
    scan: list[str] = Field(default_factory=list)
    class_key: Literal["none", "first2", "first1xx"] = "none"
    symptom: bool = False
    entries: list[SignalEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_keys(self) -> SignalTable:
        seen: set[str] = set()
        for entry in self.entries:
            for key in (entry.key, *entry.aliases):
                folded = key if self.case_sensitive else key.lower()
                if folded in seen:
                    raise ValueError(f"key {key!r} appears twice in the {self.kind} table")
                seen.add(folded)
        return self


@dataclass(frozen=True)
class Signal:
    """A signal value that decides a category: what the analyzer scores like a pattern.

    It has the attributes of a :class:`~airflow_faultcat.core.patterns.spec.Pattern` that the
    analyzer reads, so findings from signals and from patterns look alike.
    """

    kind: str
    key: str
    category: Category
    description: str
    severity: Severity
    weight: float
    symptom: bool
    services_affected: tuple[str, ...] = ()
    recovery_hint: str = ""
    via: str | None = None  # the base class whose category it took, for exceptions
    generic: bool = False
    remediation: tuple[str, ...] = ()

    @property
    def pattern_id(self) -> str:
        """A stable id: ``signal:<kind>:<key>``."""
        return f"signal:{self.kind}:{self.key}"

    def regex_specificity(self, index: int) -> float:
        """The table's weight (signals have no regex of their own), scaled down when generic."""
        from airflow_faultcat.core.patterns.spec import GENERIC_FACTOR

        return round(self.weight * (GENERIC_FACTOR if self.generic else 1.0), 4)


class SignalTableError(ValueError):
    """A signal table could not be loaded; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in signal tables:\n" + "\n".join(self.problems))


def _read_table(path: Path) -> tuple[SignalTable | None, list[str]]:
    try:
        document: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    try:
        return SignalTable.model_validate(document), []
    except ValidationError as exc:
        return None, [
            f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]


def _looks_like_a_class(name: str) -> bool:
    """An unqualified name reads as an exception class only if no English word could be it.

    ``MemoryError`` or ``ConnectTimeout`` can stand alone; ``Forbidden`` or ``Aborted`` need
    their module (``google.api_core.exceptions.Forbidden``).
    """
    return name.endswith(("Error", "Exception")) or sum(c.isupper() for c in name) >= 2


class _CompiledTable:
    """One table ready to read lines: its regexes compiled, its keys indexed."""

    def __init__(self, table: SignalTable) -> None:
        self.table = table
        fold = (lambda s: s) if table.case_sensitive else str.lower
        self._fold = fold
        self.index: dict[str, SignalEntry] = {}
        short: dict[str, list[SignalEntry]] = {}
        for entry in table.entries:
            for key in (entry.key, *entry.aliases):
                self.index[fold(key)] = entry
            if table.kind == "exception":
                short.setdefault(fold(entry.key.rsplit(".", 1)[-1]), []).append(entry)
        # An unqualified class name resolves when only one entry has it, or the builtin has it.
        self.short: dict[str, SignalEntry] = {}
        for name, entries in short.items():
            builtin = [e for e in entries if e.key.startswith("builtins.")]
            if len(entries) == 1 or builtin:
                self.short[name] = (builtin or entries)[0]
        # {keys} in a read regex: every written form that is not a bare number (those are read
        # through their context, such as "[Errno 28]", never alone). Longest first, then by name:
        # the same text in every process, so the compiled-pattern cache is hit.
        names = sorted(
            {
                k.rsplit(".", 1)[-1]
                for e in table.entries
                for k in (e.key, *e.aliases)
                if not k.lstrip("-").isdigit()
            },
            key=lambda name: (-len(name), name),
        )
        keys = "|".join(re2.escape(k) for k in names)
        self.regexes = [r.replace("{keys}", keys) for r in table.reads]
        self.scan_regexes = [r.replace("{keys}", keys) for r in table.scan] or self.regexes
        options = re2.Options()
        options.case_sensitive = table.case_sensitive
        options.max_mem = 64 << 20
        options.log_errors = False
        self._compiled = [re2.compile(r, options) for r in self.regexes]

    def lookup(self, raw: str) -> SignalEntry | None:
        key = self._fold(raw)
        entry = self.index.get(key)
        if entry is None and self.table.kind == "exception" and ("." in key or _looks_like_a_class(key)):
            entry = self.short.get(key.rsplit(".", 1)[-1])
        if entry is None and self.table.class_key == "first2" and len(key) == 5:
            entry = self.index.get(key[:2])
        if entry is None and self.table.class_key == "first1xx" and len(key) == 3:
            entry = self.index.get(key[0] + "xx")
        return entry

    def read(self, text: str) -> Iterator[str]:
        """Every key written in ``text``, in order (a key read by two regexes once)."""
        seen: set[str] = set()
        for compiled in self._compiled:
            for match in compiled.finditer(text):
                raw = next((g for g in match.groups() if g), None)
                if raw and raw not in seen:
                    seen.add(raw)
                    yield raw


class SignalReader:
    """All signal tables, compiled: reads the signals a log line carries.

    :param tables: the tables (default: the shipped ones, see :func:`load_signals`).
    """

    def __init__(self, tables: Sequence[SignalTable] | None = None) -> None:
        self.tables = [_CompiledTable(t) for t in (load_signals() if tables is None else tables)]
        self._signals: dict[tuple[str, str], Signal | None] = {}
        self._read_cached = functools.lru_cache(maxsize=READ_CACHE_SIZE)(self._read)

    @property
    def scan_regexes(self) -> list[str]:
        """The regexes that find every line any table may read (each line is then read whole)."""
        return [r for t in self.tables for r in t.scan_regexes]

    def _resolve(self, table: _CompiledTable, entry: SignalEntry) -> Signal | None:
        cache_key = (table.table.kind, entry.key)
        if cache_key in self._signals:
            return self._signals[cache_key]
        decided, via, frontier, depth = entry, None, [entry], 0
        while decided.category is None and frontier and depth < _MAX_BASE_DEPTH:
            depth += 1
            bases = [table.index.get(table._fold(b)) for e in frontier for b in e.bases]
            frontier = [b for b in bases if b is not None]
            decided = next((b for b in frontier if b.category is not None), decided)
            via = decided.key if decided is not entry else None
        signal = None
        if decided.category is not None:
            signal = Signal(
                kind=table.table.kind,
                key=entry.key,
                category=decided.category,
                description=entry.description,
                severity=entry.severity,
                weight=table.table.weight,
                symptom=table.table.symptom,
                services_affected=tuple(entry.services_affected or decided.services_affected),
                recovery_hint=entry.recovery_hint or decided.recovery_hint,
                via=via,
                generic=entry.generic or decided.generic,
            )
        self._signals[cache_key] = signal
        return signal

    def read(self, text: str, table_index: int | None = None) -> list[Signal]:
        """The deciding signals in ``text`` (a line's readable text), of one table or all.

        The answer depends on the text alone: the latest :data:`READ_CACHE_SIZE` are remembered.
        """
        return list(self._read_cached(text, table_index))

    def _read(self, text: str, table_index: int | None) -> tuple[Signal, ...]:
        tables = self.tables if table_index is None else [self.tables[table_index]]
        found = []
        for table in tables:
            for raw in table.read(text):
                entry = table.lookup(raw)
                signal = self._resolve(table, entry) if entry is not None else None
                if signal is not None and signal not in found:
                    found.append(signal)
        return tuple(found)


def builtin_tables() -> list[Path]:
    """The shipped signal tables, sorted by name."""
    return sorted(SIGNALS_DIR.glob("*.yaml"))


def load_signals(paths: Iterable[str | Path] = ()) -> list[SignalTable]:
    """Load the shipped signal tables (or the given files).

    :raises SignalTableError: listing every problem, when a table is broken.
    """
    tables, problems = [], []
    seen: dict[str, Path] = {}
    for path in [Path(p) for p in paths] or builtin_tables():
        table, table_problems = _read_table(path)
        problems.extend(table_problems)
        if table is not None:
            if table.kind in seen:
                problems.append(f"{path}: kind {table.kind!r} already defined in {seen[table.kind]}")
                continue
            seen[table.kind] = path
            tables.append(table)
    if problems:
        raise SignalTableError(problems)
    return tables


def check_signals(table: SignalTable) -> list[str]:
    """Compile a table's regexes and check that each entry's examples read as that entry.

    :return: the problems found (empty when the table is good).
    """
    from airflow_faultcat.core.patterns.matcher import compile_problems

    problems = []
    try:
        reader = SignalReader([table])
    except re2.error as exc:
        return [f"{table.kind}: a read regex does not compile: {exc}"]
    compiled = reader.tables[0]
    for regex in {*compiled.regexes, *compiled.scan_regexes}:
        problems.extend(f"{table.kind}: {p}" for p in compile_problems(regex))
    for entry in table.entries:
        for base in entry.bases:
            if compiled.index.get(compiled._fold(base)) is None:
                problems.append(f"{table.kind}: {entry.key}: base {base!r} is not in the table")
        for example in entry.examples:
            keys = [compiled.lookup(raw) for raw in compiled.read(example)]
            if entry not in keys:
                problems.append(
                    f"{table.kind}: {entry.key}: example does not read as this entry: {example!r}"
                )
        if table.kind == "exception" and reader._resolve(compiled, entry) is None and entry.category:
            problems.append(f"{table.kind}: {entry.key}: does not resolve")
    return problems
