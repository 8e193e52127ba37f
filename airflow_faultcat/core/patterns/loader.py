"""Load and validate pattern files: the shipped library plus the user's own.

A broken file never half-loads: :func:`load_library` raises :class:`PatternLibraryError` listing
every problem with the file, the ``pattern_id`` and what is wrong; ``faultcat patterns validate``
prints the same list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from airflow_faultcat.core.patterns.spec import Pattern

#: Folder of the shipped pattern files (one YAML file per family).
LIBRARY_DIR = Path(__file__).parent / "library"

_TOP_LEVEL_KEYS = {"family", "description", "patterns"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: A pattern file larger than this is refused (the shipped files are under 100 KiB).
MAX_FILE_BYTES = 4 << 20
#: A pattern file with more YAML values (scalars, lists, mappings) than this is refused before
#: they are built: each costs hundreds of bytes once loaded, so 4 MiB of ``[0, 0, ...]`` took
#: gigabytes. The largest shipped file has under 2,000, the whole shipped library 23,000.
MAX_NODES = 50_000
#: Lists and mappings nested deeper than this are refused (a pattern file needs four levels).
#: PyYAML's pure-Python loader, used where libyaml is missing, builds them recursively.
MAX_DEPTH = 32
#: At most this many problems are listed for one file; checking stops there.
MAX_PROBLEMS = 100


def _yaml_problem(text: str) -> str | None:
    """What makes a YAML text unfit to build, found in one streaming pass over its events.

    YAML anchors and aliases are refused (a few lines of them expand to gigabytes), and so is a
    text of more than :data:`MAX_NODES` values or nested deeper than :data:`MAX_DEPTH`.
    """
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            return "YAML anchors and aliases (&, *) are not allowed in pattern files"
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                return f"more than {MAX_NODES} YAML values; a pattern file holds at most {MAX_NODES}"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return f"lists and mappings nested more than {MAX_DEPTH} deep"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _surrogate_problem(document: Any) -> str | None:
    """A string that is not valid Unicode: PyYAML's pure-Python loader reads the escape
    ``"\\ud800"`` as a lone surrogate, which no regex engine, report or JSON encoder takes."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"not valid Unicode (a lone surrogate, \\ud800-\\udfff): {item[:60]!r}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _too_many(path: Path | str) -> PatternProblem:
    return PatternProblem(str(path), None, f"stopped after {MAX_PROBLEMS} problems; fix these first")


@dataclass(frozen=True)
class PatternProblem:
    """One thing wrong with a pattern file.

    :param path: the file.
    :param pattern_id: the pattern concerned (``None`` for a file-level problem; ``#N`` when the
        pattern has no usable id, N being its 1-based position in the file).
    :param message: what is wrong.
    """

    path: str
    pattern_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: {self.pattern_id}" if self.pattern_id else self.path
        return f"{where}: {self.message}"


class PatternLibraryError(ValueError):
    """A pattern file could not be loaded; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[PatternProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in pattern files:\n{lines}")


@dataclass
class PatternLibrary:
    """The patterns in force, in load order, with the file each came from.

    :param patterns: the patterns; a user file's pattern replaces a shipped one with the same id.
    :param sources: pattern_id -> the file it was loaded from.
    """

    patterns: list[Pattern] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patterns)

    def get(self, pattern_id: str) -> Pattern | None:
        """Return the pattern with that id, or ``None``."""
        for pattern in self.patterns:
            if pattern.pattern_id == pattern_id:
                return pattern
        return None


def _yaml_error(path: Path, exc: yaml.YAMLError) -> PatternProblem:
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return PatternProblem(str(path), None, f"not valid YAML{where}: {problem}")


def _pydantic_problems(path: Path, pattern_id: str, exc: ValidationError) -> list[PatternProblem]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "pattern"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        problems.append(PatternProblem(str(path), pattern_id, f"{loc}: {msg}"))
    return problems


def read_pattern_file(path: str | Path) -> tuple[list[Pattern], list[PatternProblem]]:
    """Parse one pattern file and check each pattern's fields (not its regexes).

    :param path: a YAML file in the library format (see ``docs/patterns.md``).
    :return: the patterns that parsed, and the problems found (empty when the file is good).
    """
    path = Path(path)
    try:
        if not path.is_file():
            return [], [PatternProblem(str(path), None, "not a regular file")]
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = f"{size} bytes; a pattern file is at most {MAX_FILE_BYTES}"
            return [], [PatternProblem(str(path), None, message)]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [PatternProblem(str(path), None, f"cannot read: {exc}")]
    try:
        refused = _yaml_problem(text)
        if refused:
            return [], [PatternProblem(str(path), None, refused)]
        document: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        return [], [_yaml_error(path, exc)]
    surrogate = _surrogate_problem(document)
    if surrogate:
        return [], [PatternProblem(str(path), None, surrogate)]
    if not isinstance(document, dict):
        return [], [PatternProblem(str(path), None, "the top level must be a mapping with 'patterns'")]
    problems: list[PatternProblem] = []
    unknown = set(document) - _TOP_LEVEL_KEYS
    if unknown:
        # YAML keys may be numbers or null too: sorted by their text, never compared as values.
        names = sorted(unknown, key=lambda key: (str(key), type(key).__name__))
        problems.append(PatternProblem(str(path), None, f"unknown top-level key(s): {names}"))
    raw_patterns = document.get("patterns")
    if not isinstance(raw_patterns, list) or not raw_patterns:
        problems.append(PatternProblem(str(path), None, "'patterns' must be a non-empty list"))
        return [], problems
    patterns: list[Pattern] = []
    seen: set[str] = set()
    for position, raw in enumerate(raw_patterns, start=1):
        if len(problems) >= MAX_PROBLEMS:
            problems.append(_too_many(path))
            break
        label = f"#{position}"
        if isinstance(raw, dict) and isinstance(raw.get("pattern_id"), str):
            label = raw["pattern_id"]
        if not isinstance(raw, dict):
            problems.append(PatternProblem(str(path), label, "a pattern must be a mapping"))
            continue
        try:
            pattern = Pattern.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(path, label, exc))
            continue
        if pattern.pattern_id in seen:
            problems.append(PatternProblem(str(path), label, "duplicate pattern_id in this file"))
            continue
        seen.add(pattern.pattern_id)
        patterns.append(pattern)
    return patterns, problems


def builtin_files() -> list[Path]:
    """The shipped pattern files, sorted by name."""
    return sorted(LIBRARY_DIR.glob("*.yaml"))


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Turn files and folders (``*.yaml`` / ``*.yml`` inside, sorted) into a list of files."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            files.append(path)
    return files


#: The regexes of one pattern file compile to at most this many RE2 instructions in all (the
#: largest shipped file needs 33,000, the whole shipped library 290,000): compiling a few hundred
#: large regexes would otherwise take minutes.
MAX_PROGRAM_TOTAL = 300_000


def check_patterns(patterns: Sequence[Pattern], path: str) -> list[PatternProblem]:
    """Compile each pattern's regexes in every engine and run its examples and counterexamples.

    :param patterns: patterns read from ``path``.
    :param path: the file they came from (for the messages).
    :return: the problems found.
    """
    from airflow_faultcat.core.patterns.matcher import check_regex, line_regex

    problems: list[PatternProblem] = []
    total = 0
    for pattern in patterns:
        compiled = []
        broken = False
        for regex in pattern.regexes:
            if len(problems) >= MAX_PROBLEMS:
                problems.append(_too_many(path))
                return problems
            check = check_regex(regex)
            total += check.program_size
            if total > MAX_PROGRAM_TOTAL:
                message = (
                    f"the regexes compile to more than {MAX_PROGRAM_TOTAL} RE2 instructions in all; "
                    "split the file or shorten the bounded repeats ({n,m})"
                )
                problems.append(PatternProblem(path, pattern.pattern_id, message))
                return problems
            for message in check.problems:
                problems.append(PatternProblem(path, pattern.pattern_id, message))
                broken = True
            if not broken:
                compiled.append(line_regex(regex))
        if broken:
            continue
        if any(r.search(b"") for r in compiled):
            problems.append(PatternProblem(path, pattern.pattern_id, "a regex matches the empty line"))
        for example in pattern.examples:
            if not any(r.search(example.encode("utf-8")) for r in compiled):
                problems.append(
                    PatternProblem(path, pattern.pattern_id, f"example does not match: {example!r}")
                )
        for counter in pattern.counterexamples:
            if any(r.search(counter.encode("utf-8")) for r in compiled):
                problems.append(
                    PatternProblem(path, pattern.pattern_id, f"counterexample matches: {counter!r}")
                )
    return problems


def validate_files(paths: Iterable[str | Path]) -> tuple[int, list[PatternProblem]]:
    """Validate pattern files completely (fields, ids, regexes in every engine, examples).

    :param paths: files or folders; empty means the shipped library.
    :return: the number of patterns read and every problem found.
    """
    files = expand_paths(paths) or builtin_files()
    problems: list[PatternProblem] = []
    owners: dict[str, str] = {}
    count = 0
    for file in files:
        patterns, file_problems = read_pattern_file(file)
        problems.extend(file_problems)
        problems.extend(check_patterns(patterns, str(file)))
        count += len(patterns)
        for pattern in patterns:
            if pattern.pattern_id in owners:
                problems.append(
                    PatternProblem(
                        str(file),
                        pattern.pattern_id,
                        f"pattern_id already defined in {owners[pattern.pattern_id]}",
                    )
                )
            owners.setdefault(pattern.pattern_id, str(file))
    if not files:
        problems.append(PatternProblem(str(LIBRARY_DIR), None, "no pattern files found"))
    return count, problems


def load_library(
    extra_paths: Iterable[str | Path] = (), *, include_builtin: bool = True, check: bool = False
) -> PatternLibrary:
    """Load the shipped pattern library, then the user's files in order.

    A user pattern with the id of a shipped one replaces it in place; a new id is added. Ids must
    be unique within the shipped library and within each user file.

    :param extra_paths: user pattern files or folders (from ``[faultcat] pattern_paths``).
    :param include_builtin: load the shipped library first.
    :param check: also compile every regex and run the examples (what ``validate`` does); the
        matcher compiles the regexes anyway, so this is for tools and tests.
    :raises PatternLibraryError: listing every problem, when any file is broken.
    """
    library = PatternLibrary()
    index: dict[str, int] = {}
    problems: list[PatternProblem] = []
    for file in builtin_files() if include_builtin else []:
        patterns, file_problems = read_pattern_file(file)
        problems.extend(file_problems)
        for pattern in patterns:
            if pattern.pattern_id in index:
                other = library.sources[pattern.pattern_id]
                problems.append(
                    PatternProblem(str(file), pattern.pattern_id, f"pattern_id already defined in {other}")
                )
                continue
            index[pattern.pattern_id] = len(library.patterns)
            library.patterns.append(pattern)
            library.sources[pattern.pattern_id] = str(file)
    for file in expand_paths(extra_paths):
        if not file.exists():
            problems.append(PatternProblem(str(file), None, "no such file or folder"))
            continue
        patterns, file_problems = read_pattern_file(file)
        file_problems.extend(check_patterns(patterns, str(file)))
        problems.extend(file_problems)
        for pattern in patterns:
            if pattern.pattern_id in index:
                library.patterns[index[pattern.pattern_id]] = pattern
            else:
                index[pattern.pattern_id] = len(library.patterns)
                library.patterns.append(pattern)
            library.sources[pattern.pattern_id] = str(file)
    if check:
        for file in builtin_files() if include_builtin else []:
            ids = {pid for pid, src in library.sources.items() if src == str(file)}
            problems.extend(check_patterns([p for p in library.patterns if p.pattern_id in ids], str(file)))
    if problems:
        raise PatternLibraryError(problems)
    return library
