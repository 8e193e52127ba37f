"""One linear-time scan of all the library's regexes over a log.

With Hyperscan (``hyperscan`` wheel, bundling Vectorscan) one pass over a block of text (about
1 MB, cut at a line end) finds *which* regexes match and *where*: each regex is compiled as
``(?:regex)[^\\n]*(?:\\n|\\z)``, whose only match end is the end of a line holding a match, and
Hyperscan reports an end once per regex. So a regex is reported once per matching line, however
many times it matches there, and the work is one pass plus one callback per (regex, line): it does
not grow with the number of regexes that hit a block, nor with the matches on one line. A line
Hyperscan may read otherwise than RE2 (a match that may cross a line break, a non-ASCII line) is
checked by RE2 on that line alone. A regex Hyperscan cannot compile so (one with ``$``: an end
anchor inside a regex is refused) is reported once per block, and RE2 finds its lines.

Without Hyperscan an RE2 ``Set`` says which regexes match in the block, and RE2 finds their lines.

Both engines run in linear time, so a user's regex such as ``(a+)+$`` cannot hang a worker. All
regexes are case-insensitive and never match across a line end.

Both engines find the same lines. RE2 reads UTF-8 characters and Hyperscan (compiled for bytes:
its UTF-8 mode takes minutes to compile the library) reads bytes, so on a line holding non-ASCII
bytes the regexes whose two readings may differ (``.``, ``[^...]`` and ``\\S`` repeated a bounded
number of times, non-ASCII text, ``\\x``, ``\\p``) are matched by RE2 too.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import re2

try:  # Hyperscan wheels exist for x86_64 and aarch64 only.
    import hyperscan
except ImportError:  # pragma: no cover - exercised on platforms without wheels
    hyperscan = None

log = logging.getLogger(__name__)

#: RE2's memory budget per regex; the Python wrapper returns "no match" when it is exhausted,
#: so it is set high and :func:`compile_problems` rejects regexes that need more.
RE2_MAX_MEM = 64 << 20
_RE2_SET_BLOCK = 64 * 1024


def _re2_options(*, never_nl: bool = True) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.never_nl = never_nl
    options.max_mem = RE2_MAX_MEM
    options.log_errors = False
    return options


def line_regex(regex: str) -> re2._Regexp:
    """Compile ``regex`` with RE2 the way the matcher uses it: caseless, per line, on bytes.

    :raises re2.error: if RE2 rejects the regex.
    """
    return re2.compile(b"(?m)" + regex.encode("utf-8"), _re2_options())


#: A regex whose RE2 program has more instructions than this is refused (the largest shipped one
#: has under 3,000).
MAX_PROGRAM_SIZE = 20000
#: RE2's memory budget when a regex is only checked: room for MAX_PROGRAM_SIZE instructions, and
#: a far larger regex fails at once instead of being compiled whole (``\pL{1000}``: 0.7 s).
_CHECK_MAX_MEM = 2 << 20


@dataclass(frozen=True)
class RegexCheck:
    """What :func:`check_regex` found.

    :param problems: what is wrong with the regex (empty when it compiles everywhere).
    :param program_size: its RE2 program's instructions (0 when RE2 rejects it): what compiling
        it costs, roughly, in either engine.
    """

    problems: list[str]
    program_size: int


def check_regex(regex: str) -> RegexCheck:
    """Check that ``regex`` compiles for the matcher: in RE2 and, where installed, in Hyperscan,
    within the size limit. A regex too large for RE2 is not compiled by Hyperscan."""
    problems = []
    options = _re2_options()
    options.max_mem = _CHECK_MAX_MEM
    size, too_large = 0, False
    try:
        compiled = re2.compile(b"(?m)" + regex.encode("utf-8"), options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        detail = str(detail).split(": (?m)")[0]
        too_large = "too large" in detail
        if too_large:
            problems.append(f"regex {regex!r} is too large for RE2 (over {MAX_PROGRAM_SIZE} instructions)")
        else:
            problems.append(f"RE2 rejects regex {regex!r}: {detail}")
    else:
        size = compiled.programsize
        if size > MAX_PROGRAM_SIZE:
            too_large = True
            problems.append(f"regex {regex!r} is too large for RE2 (program size {size})")
    if hyperscan is not None and not too_large:
        try:
            expression, flags = _hs_expression(regex)
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(expressions=[expression], ids=[0], elements=1, flags=[flags])
        except hyperscan.error as exc:
            problems.append(f"Hyperscan rejects regex {regex!r}: {exc}")
    return RegexCheck(problems, size)


def compile_problems(regex: str) -> list[str]:
    """Return what is wrong with ``regex`` for the matcher (empty when it compiles everywhere).

    It must compile in RE2 and, where installed, in Hyperscan, within the size limit.
    """
    return check_regex(regex).problems


if hyperscan is not None:
    _HS_FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_MULTILINE
    #: A regex compiled to report its lines: every match end (one per line, see _hs_expression).
    _HS_LINE_FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_MULTILINE
else:  # pragma: no cover
    _HS_FLAGS = _HS_LINE_FLAGS = 0



def _dollars_as_line_breaks(regex: str) -> str | None:
    """``regex`` with each ``$`` (an end anchor, outside a class) made ``\\n``; ``None`` when it
    holds ``\\z`` or ``\\Z``.

    Hyperscan refuses an end anchor that is not at the end of an expression ("Embedded end
    anchors not supported"), as ``(?:regex)[^\\n]*(?:\\n|\\z)`` would have it. ``\\n`` consumes the line
    break ``$`` stands before, so a match ends one line late: both lines are checked by RE2.
    """
    out: list[str] = []
    i, n, in_class = 0, len(regex), False
    while i < n:
        c = regex[i]
        if c == "\\":
            if regex[i + 1 : i + 2] in ("z", "Z"):
                return None
            out.append(regex[i : i + 2])
            i += 2
            continue
        if in_class:
            if regex.startswith("[:", i):
                close = regex.find(":]", i + 2)
                close = n if close < 0 else close + 2
                out.append(regex[i:close])
                i = close
                continue
            in_class = c != "]"
        elif c == "[":
            in_class = True
            j = i + 1 + regex.startswith("^", i + 1)
            if regex.startswith("]", j):  # a leading ] is a member, not the end
                j += 1
            out.append(regex[i:j])
            i = j
            continue
        elif c == "$":
            c = "\\n"
        out.append(c)
        i += 1
    return "".join(out)


def _hs_expression(regex: str) -> tuple[bytes, int]:
    """What Hyperscan compiles for ``regex``, and its flags.

    ``(?:regex)[^\\n]*(?:\\n|\\z)`` matches from a match of ``regex`` to the end of its line, and
    ends nowhere else; Hyperscan reports a regex once per end offset, so once per matching line.
    A regex with ``\\z`` or ``\\Z`` is reported once per block instead, and RE2 finds its lines.
    """
    lines = _dollars_as_line_breaks(regex)
    if lines is None:
        return regex.encode("utf-8"), _HS_FLAGS
    return b"(?:" + lines.encode("utf-8") + b")[^\\n]*(?:\\n|\\z)", _HS_LINE_FLAGS


_CROSSING_ESCAPES = frozenset("sWDHvRnxcpPXNCQ0123456789")
_INLINE_DOTALL = re.compile(r"\(\?[a-zA-Z-]*s")


def _may_read_lines_otherwise(regex: str) -> bool:
    """Whether Hyperscan may report an ASCII line for ``regex`` that RE2 does not match.

    RE2 never matches a line break (``never_nl``); Hyperscan's ``\\s``, ``\\W``, ``\\D``, ``[^...]``
    and the like do, so a match may start on an earlier line. Its ``\\s`` also matches a vertical
    tab, RE2's does not. Erring towards "may" costs an RE2 search of the line.
    """
    if "[^" in regex or "[:" in regex or _INLINE_DOTALL.search(regex):
        return True
    if any(ord(c) < 0x20 for c in regex):
        return True
    i, n = 0, len(regex)
    while i < n:
        if regex[i] == "\\":
            # \s and the like, or an escape starting a range ([\t-\r] holds a line break)
            if regex[i + 1 : i + 2] in _CROSSING_ESCAPES or regex[i + 2 : i + 3] == "-":
                return True
            i += 2
        else:
            i += 1
    return False


def _cache_dir() -> Path | None:
    configured = os.environ.get("FAULTCAT_CACHE_DIR")
    if configured == "":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-faultcat"


_ONE_CHAR_ESCAPES = frozenset("WSDNHVR")
_UNICODE_ESCAPES = frozenset("pPCXx")
_UNBOUNDED = re.compile(r"[*+]|\{[0-9]+,\}")


def _bytes_differ(regex: str) -> bool:
    """Whether reading ``regex`` over bytes (Hyperscan) may miss a line that reading it over UTF-8
    characters (RE2) matches.

    Non-ASCII text, ``\\x``, ``\\p`` and the like may; so may ``.``, ``[^...]``, ``\\S``, ``\\W`` or
    ``\\D`` unless repeated without an upper bound (``.{1,2}`` is one or two bytes to Hyperscan,
    and ``’`` is three; ``.*`` covers any number). ASCII literals, ``\\w``, ``\\s``, ``\\b`` and
    ASCII classes read alike. Erring towards "may" costs only time.
    """
    if not regex.isascii():
        return True
    i, n = 0, len(regex)
    while i < n:
        one_char = False
        if regex[i] == "\\":
            escaped = regex[i + 1 : i + 2]
            if escaped in _UNICODE_ESCAPES:
                return True
            one_char = escaped in _ONE_CHAR_ESCAPES
            i += 2
        elif regex[i] == "[":
            j = i + 1
            if regex.startswith("^", j):
                one_char, j = True, j + 1
            if regex.startswith("]", j):  # a leading ] is a member, not the end
                j += 1
            while j < n and regex[j] != "]":
                if regex[j] == "\\":
                    if regex[j + 1 : j + 2] in _UNICODE_ESCAPES:
                        return True
                    one_char = one_char or regex[j + 1 : j + 2] in _ONE_CHAR_ESCAPES
                    j += 2
                elif regex.startswith("[:", j):
                    one_char = one_char or regex.startswith("[:^", j)
                    close = regex.find(":]", j + 2)
                    j = n if close < 0 else close + 2
                else:
                    j += 1
            i = j + 1
        else:
            one_char = regex[i] == "."
            i += 1
        if one_char and not _UNBOUNDED.match(regex, i):
            return True
    return False


#: The only non-ASCII characters RE2 folds onto ASCII letters: KELVIN SIGN (k), LONG S (s).
_ASCII_FOLDS = (b"\xe2\x84\xaa", b"\xc5\xbf")
_HIGH_BYTES = re.compile(rb"[\x80-\xff]+")


def _non_ascii_lines(block: bytes) -> list[bytes]:
    """The lines of ``block`` that hold a byte above 127, each once."""
    lines: list[bytes] = []
    line_end = -1
    for run in _HIGH_BYTES.finditer(block):
        if run.start() < line_end:
            continue
        start = block.rfind(b"\n", 0, run.start()) + 1
        line_end = block.find(b"\n", run.end())
        line_end = len(block) if line_end < 0 else line_end
        lines.append(block[start:line_end])
    return lines


class _HyperscanEngine:
    name = "hyperscan"

    def __init__(self, regexes: Sequence[str]) -> None:
        # Most regexes report the end of each line they match (see _hs_expression); the others
        # report once per block, and RE2 finds their lines.
        self._regexes = list(regexes)
        compiled = [_hs_expression(r) for r in self._regexes]
        try:
            self._db = self._load_or_compile([e for e, _ in compiled], [f for _, f in compiled])
        except hyperscan.error:
            # A regex that check_regex did not see may compile only as it is: found per block.
            compiled = [
                (e, f) if f != _HS_LINE_FLAGS or self._compiles(e, f) else (r.encode("utf-8"), _HS_FLAGS)
                for r, (e, f) in zip(self._regexes, compiled, strict=True)
            ]
            self._db = self._load_or_compile([e for e, _ in compiled], [f for _, f in compiled])
        #: The ids reported per line; those whose lines RE2 checks (on an ASCII line too); those
        #: whose ``$`` became ``\\n``, reported one line late too.
        self.line_ids = frozenset(i for i, (_, f) in enumerate(compiled) if f == _HS_LINE_FLAGS)
        self.late_ids = frozenset(i for i in self.line_ids if "$" in self._regexes[i])
        self.checked_ids = self.late_ids | frozenset(
            i for i in self.line_ids if _may_read_lines_otherwise(self._regexes[i])
        )
        # On non-ASCII lines: the regexes Hyperscan may read otherwise than RE2 (and all of them
        # on a line with a character RE2 folds onto an ASCII letter), each set built on first use.
        self._utf8_ids = [i for i, regex in enumerate(self._regexes) if _bytes_differ(regex)]
        self._re2_sets: dict[str, _Re2SetEngine] = {}

    @staticmethod
    def _load_or_compile(expressions: list[bytes], flags: list[int]) -> hyperscan.Database:
        key = hashlib.sha256(b"\0".join(expressions) + str(flags).encode()).hexdigest()[:32]
        version = getattr(hyperscan, "__version__", "0")
        cache = _cache_dir()
        path = cache / f"hs-{version}-{key}.db" if cache else None
        if path is None:
            return _HyperscanEngine._compile(expressions, flags)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(path.with_suffix(".lock"), "a+b")  # noqa: SIM115 - held while compiling
        except OSError:
            log.debug("cannot use the compiled-pattern cache %s", path)
            return _HyperscanEngine._compile(expressions, flags)
        with lock:
            # One process compiles (about a second per thousand regexes); the others wait, then load.
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.is_file():
                try:
                    db = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
                    db.scratch = hyperscan.Scratch(db)  # a loaded database comes without one
                    return db
                except (hyperscan.error, OSError, ValueError, TypeError):
                    log.debug("ignoring unreadable compiled-pattern cache %s", path)
            db = _HyperscanEngine._compile(expressions, flags)
            try:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(hyperscan.dumpb(db))
                os.replace(tmp, path)
            except OSError:
                log.debug("cannot write compiled-pattern cache %s", path)
            return db

    @staticmethod
    def _compiles(expression: bytes, flags: int) -> bool:
        try:
            _HyperscanEngine._compile([expression], [flags])
        except hyperscan.error:
            return False
        return True

    @staticmethod
    def _compile(expressions: list[bytes], flags: list[int]) -> hyperscan.Database:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(
            expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions), flags=flags
        )
        return db

    def hits(self, block: bytes) -> tuple[set[int], dict[int, list[int]]]:
        """The ids whose lines RE2 must find in ``block``, and the line ends the others reported.

        A line end is the offset just past the line's ``\\n`` (``len(block) + 1`` for a last line
        without one). One callback per (regex, line), or per block for a regex without lines.
        """
        found: set[int] = set()
        ends: dict[int, list[int]] = {}
        line_ids = self.line_ids

        def on_match(regex_id: int, start: int, end: int, flags: int, context: object) -> None:
            if regex_id in line_ids:
                kept = ends.get(regex_id)
                if kept is None:
                    ends[regex_id] = [end]
                else:
                    kept.append(end)
            else:
                found.add(regex_id)

        # The last line ends with a line break too: a $ made \n (see _dollars_as_line_breaks) ends there.
        self._db.scan(block if block.endswith(b"\n") else block + b"\n", match_event_handler=on_match)
        if not block.isascii():
            self._add_utf8_hits(block, found)
        return found, ends

    def _add_utf8_hits(self, block: bytes, found: set[int]) -> None:
        """Add the regexes RE2 matches on the non-ASCII lines of ``block`` where Hyperscan, reading
        bytes, may not: RE2 finds their lines."""
        lines = _non_ascii_lines(block)
        folded = [line for line in lines if any(fold in line for fold in _ASCII_FOLDS)]
        for kind, ids, text in (
            ("utf8", self._utf8_ids, lines),
            ("all", list(range(len(self._regexes))), folded),
        ):
            if not ids or not text:
                continue
            engine = self._re2_sets.get(kind)
            if engine is None:
                engine = self._re2_sets[kind] = _Re2SetEngine([self._regexes[i] for i in ids])
            found.update(ids[index] for index in engine.hits(b"\n".join(text))[0])


class _Re2SetEngine:
    name = "re2"

    def __init__(self, regexes: Sequence[str]) -> None:
        self._set = re2.Set.SearchSet(_re2_options())
        for regex in regexes:
            self._set.Add(b"(?m)" + regex.encode("utf-8"))
        self._set.Compile()

    def hits(self, block: bytes) -> tuple[set[int], dict[int, list[int]]]:
        found: set[int] = set()
        # The Set only says which regexes matched; smaller blocks keep its DFA cache warm.
        for start in range(0, len(block), _RE2_SET_BLOCK):
            end = block.find(b"\n", start + _RE2_SET_BLOCK)
            end = len(block) if end < 0 else end
            piece = block[start:end]
            found.update(self._set.Match(piece) or ())
        return found, {}


class LineHit(NamedTuple):
    """A regex matched the line spanning ``block[start:end]`` (``end`` excludes the newline).

    A named tuple: a block may yield one per line for each of several regexes.
    """

    regex_id: int
    start: int
    end: int


class MultiMatcher:
    """All regexes of a library compiled into one scan.

    :param regexes: the regexes, in the library's dialect; their position is their id.
    :param engine: ``"auto"`` (Hyperscan when installed), ``"hyperscan"`` or ``"re2"``.
    :param groups: sets of ids whose lines are found together: when any of a group hits in a
        block, one RE2 pass of their alternation finds the lines, reported under the group's
        first id (many regexes that share one consumer cost one pass, not one each).
    :raises ValueError: if ``engine`` is unknown or Hyperscan is asked for and not installed.
    """

    def __init__(
        self, regexes: Sequence[str], engine: str = "auto", groups: Sequence[Sequence[int]] = ()
    ) -> None:
        self.regexes = list(regexes)
        self._compiled: dict[int, re2._Regexp] = {}
        self._leader: dict[int, int] = {}
        self._line_source: dict[int, str] = {}
        for group in groups:
            ids = sorted(group)
            if ids:
                self._leader.update(dict.fromkeys(ids, ids[0]))
                self._line_source[ids[0]] = "|".join(f"(?:{self.regexes[i]})" for i in ids)
        if engine == "auto":
            engine = "hyperscan" if hyperscan is not None else "re2"
        if engine == "hyperscan":
            if hyperscan is None:
                raise ValueError("engine 'hyperscan' asked for, but the hyperscan package is not installed")
            self._engine: _HyperscanEngine | _Re2SetEngine = _HyperscanEngine(self.regexes)
        elif engine == "re2":
            self._engine = _Re2SetEngine(self.regexes)
        else:
            raise ValueError(f"unknown engine {engine!r}: use 'auto', 'hyperscan' or 're2'")

    @property
    def engine(self) -> str:
        """The name of the engine in use."""
        return self._engine.name

    def _line_regex(self, regex_id: int) -> re2._Regexp:
        # Compiled on first hit: most regexes never match a given log.
        compiled = self._compiled.get(regex_id)
        if compiled is None:
            source = self._line_source.get(regex_id, self.regexes[regex_id])
            compiled = self._compiled[regex_id] = line_regex(source)
        return compiled

    def scan(self, block: bytes) -> Iterator[LineHit]:
        """Yield one :class:`LineHit` per (regex, matching line) in ``block``.

        ``block`` should end at a line end; lines are separated by ``\\n``.
        """
        found, ends = self._engine.hits(block)
        # RE2 finds the lines of a group when any member needs it; else the reported lines count.
        passes = {self._leader.get(i, i) for i in found}
        reported: dict[int, list[int]] = {}
        for i in ends:
            leader = self._leader.get(i, i)
            if leader not in passes:
                reported.setdefault(leader, []).append(i)
        checked = getattr(self._engine, "checked_ids", frozenset())
        late = getattr(self._engine, "late_ids", frozenset())
        # (leader, line, at the block's start, at its end) -> whether RE2 matches the line.
        verdicts: dict[tuple[int, bytes, bool, bool], bool] = {}
        ascii_block = block.isascii()
        size = len(block)
        line_starts: dict[int, int] = {}  # line end -> its start: regexes share their lines
        for regex_id in sorted(passes | reported.keys()):
            if regex_id in passes:
                yield from self._re2_lines(regex_id, block)
                continue
            members = reported[regex_id]
            if ascii_block and checked.isdisjoint(members):  # every line reported is a hit
                found_ends = ends[members[0]] if len(members) == 1 else {e for i in members for e in ends[i]}
                for end in sorted(found_ends):
                    line_end = min(end - 1, size)
                    line_start = line_starts.get(line_end)
                    if line_start is None:
                        line_start = line_starts[line_end] = block.rfind(b"\n", 0, line_end) + 1
                    yield LineHit(regex_id, line_start, line_end)
                continue
            # line end -> whether RE2 must check the line (only members that may read it
            # otherwise reported it)
            line_ends: dict[int, bool] = {}
            for i in members:
                trusted = i not in checked
                for end in ends[i]:
                    line_end = min(end - 1, size)
                    if trusted:
                        line_ends[line_end] = False
                    else:
                        line_ends.setdefault(line_end, True)
                        if i in late:  # its $ took the line break: the line before too
                            before = block.rfind(b"\n", 0, line_end)
                            if before >= 0:
                                line_ends.setdefault(before, True)
            regex = None
            for line_end, check in sorted(line_ends.items()):
                line_start = line_starts.get(line_end)
                if line_start is None:
                    line_start = line_starts[line_end] = block.rfind(b"\n", 0, line_end) + 1
                if check or not ascii_block:
                    line = block[line_start:line_end]
                    if check or not line.isascii():
                        key = (regex_id, line, line_start == 0, line_end == size)
                        verdict = verdicts.get(key)
                        if verdict is None:
                            if regex is None:
                                regex = self._line_regex(regex_id)
                            verdict = verdicts[key] = regex.search(block, line_start, line_end) is not None
                        if not verdict:
                            continue
                yield LineHit(regex_id, line_start, line_end)

    def _re2_lines(self, regex_id: int, block: bytes) -> Iterator[LineHit]:
        """The lines RE2 matches ``regex_id`` (a group's alternation) on: one search per matching
        line, resumed after that line, so a long line with many matches is read once."""
        regex, pos = self._line_regex(regex_id), 0
        while pos <= len(block):
            match = regex.search(block, pos)
            if match is None:
                break
            line_start = block.rfind(b"\n", pos, match.start()) + 1 or pos
            line_end = block.find(b"\n", match.end())
            line_end = len(block) if line_end < 0 else line_end
            yield LineHit(regex_id, line_start, line_end)
            pos = line_end + 1
