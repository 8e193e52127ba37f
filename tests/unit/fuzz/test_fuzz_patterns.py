"""Fuzzing pattern loading: a user's pattern file loads, or is refused with a clear error.

Documents are built from the schema (valid ones), then mutated (wrong types, missing fields,
unknown keys, duplicate ids, invalid or catastrophic regexes, huge strings, Unicode) or written
by hand to be hostile (anchors and aliases, deep nesting, tags, many nodes, bytes that are not
UTF-8). Each is written to a file and loaded the way the ``[faultcat] pattern_paths`` files are
(:func:`load_library`), with PyYAML's C loader and with its pure-Python one (what runs where
libyaml is missing). Properties:

- loading returns a library or raises :class:`PatternLibraryError` whose problems name the file,
  never another exception, within a time and memory budget;
- ``faultcat patterns validate`` (:func:`validate_files`) reports the same problems;
- a library that loads matches its own examples on both engines, and scans adversarial text
  within the analyzer's budget, whatever its regexes (``(a+)+$`` included).
"""

from __future__ import annotations

import copy
import itertools
import string
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from airflow_faultcat.core.diagnose import Analyzer
from airflow_faultcat.core.models import Category, Severity
from airflow_faultcat.core.patterns import loader
from airflow_faultcat.core.patterns.loader import PatternLibraryError, load_library, validate_files
from airflow_faultcat.core.patterns.signals import SignalReader
from tests.unit.fuzz.budget import FUZZ, MB, Budget, examples, settings
from tests.unit.fuzz.logs import any_text

#: Loading a file of N bytes: 10 s plus 20 s per MiB; 64 MiB plus 16 bytes per byte.
LOAD_BUDGET = Budget(seconds=10.0, seconds_per_mb=20.0, memory=64 * MB, memory_factor=16)
#: Scanning text of N bytes with a loaded library (as the analyzer's own budget).
SCAN_BUDGET = Budget(seconds=10.0, seconds_per_mb=40.0, memory=32 * MB, memory_factor=8)

LOADERS = {"libyaml": getattr(yaml, "CSafeLoader", yaml.SafeLoader), "python": yaml.SafeLoader}
CATEGORIES = [c.value for c in Category if c is not Category.UNKNOWN]
SEVERITIES = [s.value for s in Severity]

pattern_ids = st.from_regex(r"[a-z][a-z0-9]{0,7}(_[a-z0-9]{1,5}){0,2}_[0-9]{3,4}", fullmatch=True)
words = st.text(string.ascii_lowercase + string.digits, min_size=3, max_size=10)
prose = st.text(st.characters(codec="utf-8"), min_size=1, max_size=80)


@st.composite
def valid_patterns(draw: st.DrawFn) -> dict:
    """A pattern that must load: its regex is built so that its example matches."""
    literal = " ".join(draw(st.lists(words, min_size=1, max_size=3)))
    regex = draw(
        st.sampled_from(
            [
                literal,
                f"(?:{literal}|qq{literal})",
                literal.replace(" ", r"\s+"),
                rf"\b{literal}\b",
                f"{literal}.*",
            ]
        )
    )
    pattern = {
        "pattern_id": draw(pattern_ids),
        "category": draw(st.sampled_from(CATEGORIES)),
        "severity": draw(st.sampled_from(SEVERITIES)),
        "regexes": [regex],
        "description": draw(prose),
        "examples": [
            draw(st.sampled_from(["", "ERROR ", "x: "])) + literal + draw(st.sampled_from(["", " end"]))
        ],
        "counterexamples": ["###"],
    }
    for key, value in (
        ("services_affected", st.lists(words, max_size=3)),
        ("recovery_hint", prose),
        ("remediation", st.lists(prose, max_size=3)),
        ("generic", st.booleans()),
        ("symptom", st.booleans()),
    ):
        if draw(st.booleans()):
            pattern[key] = draw(value)
    return pattern


valid_documents = st.fixed_dictionaries(
    {
        "family": words,
        "patterns": st.lists(valid_patterns(), min_size=1, max_size=4, unique_by=lambda p: p["pattern_id"]),
    },
    optional={"description": prose},
)

#: Regexes a user may write: broken, catastrophic for backtracking engines, huge, deep, Unicode.
HOSTILE_REGEXES = [
    "(a+)+$",
    "(a|aa)+$",
    "(a|a)*b",
    "(.*a){20}",
    r"(\w+\s?)+$",
    "(?:(?:(?:a*)*)*)*b",
    "foo(bar",
    "a)b",
    "[",
    "\\",
    "a{2,1}",
    "(?i)abc",
    "(?=a)b",
    r"a\1",
    "",
    " ",
    "a\nb",
    r"\C",
    "$a",
    "^*",
    "x" * 5_000,
    "(" * 40 + "x" + ")" * 40,
    "(" * 32 + "x" + ")" * 32,
    r"\pL{1000}",
    ".{1000}x.{1000}",
    "é+",
    "\u212a",
    "\x00",
    "a\x00|b",
    ".*",
    "a|",
    r"\b",
]
WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    prose,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(words, st.integers(), max_size=2),
    st.just("x" * 100_000),
    st.sampled_from(HOSTILE_REGEXES),
)
FIELDS = ["pattern_id", "category", "severity", "regexes", "description", "examples", "counterexamples"]


@st.composite
def mutated_documents(draw: st.DrawFn) -> object:
    """A valid document with one to three things broken."""
    document = copy.deepcopy(draw(valid_documents))
    for _ in range(draw(st.integers(1, 3))):
        patterns = document.get("patterns") if isinstance(document, dict) else None
        target = draw(st.sampled_from(patterns)) if isinstance(patterns, list) and patterns else None
        target = target if isinstance(target, dict) else None
        kind = draw(st.integers(0, 8))
        if kind == 0 and target:
            target.pop(draw(st.sampled_from(FIELDS)), None)
        elif kind == 1 and target:
            target[draw(st.sampled_from(FIELDS))] = draw(WRONG_VALUES)
        elif kind == 2 and target:
            target["regexes"] = [draw(st.sampled_from(HOSTILE_REGEXES))]
        elif kind == 3 and target:
            target[draw(st.one_of(words, st.integers(), st.none(), st.booleans()))] = draw(WRONG_VALUES)
        elif kind == 4 and isinstance(document, dict):
            document[draw(st.one_of(words, st.integers(), st.none(), st.floats(allow_nan=False)))] = draw(
                WRONG_VALUES
            )
        elif kind == 5 and target and patterns:
            patterns.append(copy.deepcopy(target))  # a duplicate pattern_id
        elif kind == 6 and isinstance(document, dict):
            document["patterns"] = draw(
                st.one_of(WRONG_VALUES, st.just([]), st.lists(WRONG_VALUES, max_size=3))
            )
        elif kind == 7:
            document = draw(WRONG_VALUES)
        elif target:
            target["examples"] = [draw(any_text)]
    return document


def _dump(document: object, unicode: bool) -> bytes:
    return yaml.safe_dump(document, allow_unicode=unicode, sort_keys=False, width=200).encode("utf-8")


def _billion_laughs(levels: int) -> bytes:
    lines = ["a0: &a0 [lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + "\npatterns: []\n").encode()


#: Files no generator would write: YAML features and byte-level damage.
HOSTILE_FILES = [
    _billion_laughs(12),
    b"patterns: " + b"[" * 100_000 + b"]" * 100_000,
    b"patterns:\n" + b"".join(b"  " * i + b"- \n" for i in range(400)),
    b"patterns: " + b"{a: " * 5_000 + b"1" + b"}" * 5_000,
    b"patterns: [" + b"0, " * 1_000_000 + b"0]",
    b"patterns: [" + b"{}, " * 300_000 + b"{}]",
    b"patterns:\n" + b"- {}\n" * 200_000,
    b"zz: {" + b", ".join(b"k%d: 0" % i for i in range(100_000)) + b"}\npatterns: [0]",
    b"patterns: !!python/object/apply:os.system ['true']",
    b"patterns: !!binary aGVsbG8=",
    b"patterns: [!!set {a, b}]",
    b"family: x\n---\npatterns: []\n",
    b"\xef\xbb\xbfpatterns: []\n",
    b"patterns: [\x00]",
    b"patterns: [\xff\xfe]",
    b"\t- x",
    b"",
    b"~",
    b"- 1\n- 2\n",
    b'patterns: ["\\ud800"]',
    b"patterns:\n  - {pattern_id: a_001, regexes: ['\\ud800'], examples: ['\\udfff']}\n",
    b'patterns:\n  - {pattern_id: a_001, description: "\\ud800x", category: NETWORK}\n',
    b"1: x\nfoo: y\npatterns: [0]\n",
    b"[1, 2]: x\npatterns: [0]\n",
    b"? [a]\n: x\n",
    b"patterns: [" + b"a" * (3 * MB) + b"]",
    # Small enough for the pure-Python loader: too deep.
    b"patterns: " + b"[" * 3_000 + b"]" * 3_000,
    # Regexes that are costly to compile: far too large for RE2, or large and many.
    b"patterns:\n"
    + b"".join(
        b"  - {pattern_id: big_%03d, category: NETWORK, severity: low, description: d,"
        b" regexes: ['\\pL{1000}%d'], examples: [x], counterexamples: ['#']}\n" % (i, i)
        for i in range(30)
    ),
]


def load_outcome(path: Path) -> tuple[str, object]:
    """``("ok", library)`` or ``("error", problems)``: any other exception fails the test."""
    try:
        return "ok", load_library([path], include_builtin=False)
    except PatternLibraryError as exc:
        assert exc.problems, "an error without problems"
        for problem in exc.problems:
            assert problem.path == str(path)
            assert isinstance(problem.message, str) and problem.message.strip()
        assert str(exc).startswith(f"{len(exc.problems)} problem(s)")
        return "error", exc.problems


_files = itertools.count()


def check_file(folder: Path, content: bytes, yaml_loader: str) -> tuple[str, object]:
    """Write ``content`` as a pattern file and load it; check the outcome against validate."""
    path = folder / f"user-{next(_files)}.yaml"
    path.write_bytes(content)
    with mock.patch.object(loader, "_Loader", LOADERS[yaml_loader]):
        outcome = LOAD_BUDGET.run(len(content), lambda: load_outcome(path))
        _, problems = validate_files([path])
    assert problems == (outcome[1] if outcome[0] == "error" else [])
    path.unlink()
    return outcome


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("patterns")


@pytest.fixture(scope="module")
def no_signals():
    return SignalReader([])


@pytest.mark.parametrize("yaml_loader", sorted(LOADERS))
@settings(FUZZ, max_examples=examples(25))
@given(document=valid_documents, unicode=st.booleans())
def test_a_valid_file_loads_and_matches_its_examples(folder, no_signals, yaml_loader, document, unicode):
    outcome, library = check_file(folder, _dump(document, unicode), yaml_loader)
    assert outcome == "ok", library
    assert [p.pattern_id for p in library.patterns] == [p["pattern_id"] for p in document["patterns"]]
    for engine in ("hyperscan", "re2"):
        analyzer = Analyzer(library, engine=engine, signals=no_signals, calibration=False, learned=False)
        for pattern in library.patterns:
            found = analyzer.diagnose("\n".join(pattern.examples) + "\n")
            assert pattern.pattern_id in {f.pattern_id for f in found.findings}, (engine, pattern)


@pytest.mark.parametrize("yaml_loader", sorted(LOADERS))
@settings(FUZZ, max_examples=examples(40))
@given(document=mutated_documents(), unicode=st.booleans())
def test_a_broken_file_is_refused_with_its_problems(folder, yaml_loader, document, unicode):
    check_file(folder, _dump(document, unicode), yaml_loader)


#: PyYAML's pure-Python loader reads some 100 KB/s (slower still traced): it gets the smaller files.
HOSTILE_CASES = [
    pytest.param(index, yaml_loader, id=f"{index}-{yaml_loader}")
    for index, content in enumerate(HOSTILE_FILES)
    for yaml_loader in sorted(LOADERS)
    if yaml_loader == "libyaml" or len(content) <= 128 << 10
]


@pytest.mark.parametrize(("index", "yaml_loader"), HOSTILE_CASES)
def test_a_hostile_file_is_refused_in_budget(folder, index, yaml_loader):
    outcome, problems = check_file(folder, HOSTILE_FILES[index], yaml_loader)
    assert outcome == "error"


def test_a_file_over_the_size_limit_is_refused_unread(folder):
    big = b"patterns: []\n" + b"#" * (loader.MAX_FILE_BYTES + 1)
    outcome, problems = check_file(folder, big, "libyaml")
    assert outcome == "error" and "at most" in problems[0].message


# ---- a library that loads scans in linear time -----------------------------------------------

#: Regexes that hang a backtracking engine, with an example each matches and a counterexample.
REDOS = [
    ("(a+)+$", "aaaa", "bbbb!"),
    ("(a|aa)+$", "aaaa", "b!"),
    ("(a|a)*b", "aab", "aaaa"),
    ("(.*a){20}", "a" * 20, "bbb"),
    (r"(\w+\s?)+$", "ab cd", "!!!"),
    ("(?:(?:(?:a*)*)*)*b", "aab", "ccc"),
    ("(x+x+)+y", "xxy", "xxxx"),
    ("([a-z]+)*[0-9]", "ab1", "abc"),
    (".{1000}x.{1000}", "a" * 1000 + "x" + "a" * 1000, "x"),
    ("(" * 32 + "a" + ")" * 32 + "!", "a!", "b"),
]
ADVERSARIAL = [
    "a" * 100_000 + "!",
    ("a" * 30 + "!\n") * 3_000,
    "x" * 100_000,
    "ab " * 30_000 + "\n",
    ("a" * 2_000 + "x") * 40,
    "(" * 50_000,
]


@settings(FUZZ, max_examples=examples(8))
@given(
    regexes=st.lists(st.sampled_from(REDOS), min_size=1, max_size=4, unique=True),
    text=st.sampled_from(ADVERSARIAL),
    engine=st.sampled_from(["hyperscan", "re2"]),
)
@example(regexes=[REDOS[0]], text=ADVERSARIAL[0], engine="hyperscan")
@example(regexes=[REDOS[0]], text=ADVERSARIAL[0], engine="re2")
def test_a_loaded_library_scans_adversarial_text_in_budget(folder, no_signals, regexes, text, engine):
    document = {
        "family": "redos",
        "patterns": [
            {
                "pattern_id": f"redos_{i:03d}",
                "category": "CONFIGURATION",
                "severity": "low",
                "regexes": [regex],
                "description": "a regex that hangs backtracking engines",
                "examples": [example_],
                "counterexamples": [counter],
            }
            for i, (regex, example_, counter) in enumerate(regexes)
        ],
    }
    outcome, library = check_file(folder, _dump(document, True), "libyaml")
    assert outcome == "ok", library
    analyzer = Analyzer(library, engine=engine, signals=no_signals, calibration=False, learned=False)
    SCAN_BUDGET.run(len(text), lambda: analyzer.diagnose(text))
