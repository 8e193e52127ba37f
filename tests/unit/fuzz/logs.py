"""Hypothesis strategies for task logs: arbitrary text, and text built from log-like fragments."""

from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import strategies as st

#: Any Unicode text that can be encoded (no lone surrogates): NULs, ``\r``, controls included.
any_text = st.text(st.characters(codec="utf-8"), max_size=400)

PREFIXES = [
    "",
    "[2026-11-20, 10:00:00 UTC] {taskinstance.py:441} ERROR - ",
    "[2026-11-20T10:00:00.123+0000] {logging_mixin.py:190} INFO - ",
    "2026-11-20 10:00:00,123 WARNING ",
    "[ERROR] ",
    "ERROR - ",
    "INFO - ",
    "DEBUG ",
    "    ",
    "\t",
    "{",
]
MARKERS = [
    "Traceback (most recent call last):",
    '  File "/opt/airflow/dags/etl.py", line 42, in run',
    "    conn = psycopg2.connect(dsn)",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
    "Caused by: java.net.ConnectException: Connection refused",
    "Task failed with exception",
    "Marking task as FAILED. dag_id=etl, task_id=load",
    "Marking task as UP_FOR_RETRY. dag_id=etl, task_id=load",
    "ValueError: invalid literal for int() with base 10: 'x'",
    "Exception: ",
    '"error_detail": [',
    '"exc_type": "OSError"',
]
LEVELS = ["info", "error", "warning", "critical", "debug", "ERROR", "nonsense"]


@lru_cache(maxsize=1)
def library_phrases() -> list[str]:
    """Lines the shipped patterns and signal tables are known to match (their examples)."""
    from airflow_faultcat.core.patterns.loader import load_library
    from airflow_faultcat.core.patterns.signals import load_signals

    phrases = {example for pattern in load_library().patterns for example in pattern.examples}
    for table in load_signals():
        for entry in table.entries:
            phrases.update(entry.examples)
    return sorted(phrases)


# Drawn by index: a sampled_from over thousands of lines has a repr Hypothesis warns about.
phrases = st.deferred(lambda: st.integers(0, len(library_phrases()) - 1).map(lambda i: library_phrases()[i]))


@st.composite
def mutated_phrases(draw: st.DrawFn) -> str:
    """A library phrase with a few characters replaced, upper-cased or made non-ASCII."""
    phrase = draw(phrases)
    for _ in range(draw(st.integers(0, 3))):
        if not phrase:
            break
        i = draw(st.integers(0, len(phrase) - 1))
        new = draw(
            st.one_of(
                st.sampled_from(
                    ["é", "É", "\u00a0", "\u2019", "ß", "\u212a", "\u017f", "\x00", "\r", "\t", "ü"]
                ),
                st.just(phrase[i].upper()),
                st.characters(codec="utf-8"),
            )
        )
        phrase = phrase[:i] + new + phrase[i + 1 :]
    return phrase


def _detail(exceptions: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "exc_type": st.one_of(st.none(), st.sampled_from(["OSError", "ValueError", ""]), any_text),
            "exc_value": st.one_of(st.none(), phrases, any_text, st.integers()),
            "frames": st.just([]),
            "exceptions": exceptions,
        }
    )


error_details = st.recursive(
    _detail(st.just([])), lambda inner: _detail(st.lists(inner, max_size=2)), max_leaves=6
)


@st.composite
def json_lines(draw: st.DrawFn) -> str:
    """An Airflow 3 JSON log line, sometimes with a (nested) ``error_detail``, sometimes broken."""
    record: dict[str, object] = {
        "timestamp": "2026-11-20T10:00:00.123Z",
        "level": draw(st.sampled_from(LEVELS)),
        "event": draw(st.one_of(phrases, any_text, st.integers(), st.none())),
    }
    if draw(st.booleans()):
        record["error_detail"] = draw(st.lists(error_details, max_size=2))
    line = json.dumps(record, ensure_ascii=draw(st.booleans()))
    cut = draw(st.integers(0, 3))
    if cut == 0:  # truncated mid-record
        line = line[: draw(st.integers(0, len(line)))]
    return line


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """JSON nested deeper than Python decodes, in the places the analyzer reads."""
    depth = draw(st.sampled_from([40, 1_000, 5_000, 20_000]))
    inner = "[" * depth + "]" * depth
    return draw(
        st.sampled_from(
            [
                '{"event": "Task failed with exception", "error_detail": ' + inner + "}",
                '{"a": ' * depth + "1" + "}" * depth,
                '{"error_detail": ['
                + '{"exc_type": "OSError", "exceptions": [' * depth
                + "]}" * depth
                + "]}",
            ]
        )
    )


@st.composite
def long_lines(draw: st.DrawFn) -> str:
    """A very long line: a phrase or a single character repeated (up to a few hundred KB)."""
    unit = draw(st.one_of(phrases, st.sampled_from(["a", " ", "\x00", "é", "Traceback ", "{"])))
    count = draw(st.integers(1, 200_000 // max(1, len(unit))))
    return unit * count


lines = st.one_of(
    st.tuples(st.sampled_from(PREFIXES), st.one_of(phrases, mutated_phrases(), any_text)).map("".join),
    st.sampled_from(MARKERS),
    json_lines(),
    any_text,
)


@st.composite
def log_texts(draw: st.DrawFn) -> str:
    """A log of log-like lines, now and then with a deep JSON record or a very long line."""
    body = draw(st.lists(lines, max_size=40))
    if draw(st.integers(0, 4)) == 0:
        body.insert(draw(st.integers(0, len(body))), draw(st.one_of(deep_json(), long_lines())))
    separator = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    text = separator.join(body)
    if draw(st.booleans()):
        text += separator
    return text
