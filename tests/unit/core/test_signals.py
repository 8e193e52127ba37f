"""Signal tables: every entry read from its examples, and the analyzer deciding by signals."""

from __future__ import annotations

import sys

import pytest

from airflow_faultcat.core.models import Category
from airflow_faultcat.core.patterns.signals import (
    SignalReader,
    SignalTable,
    SignalTableError,
    builtin_tables,
    check_signals,
    load_signals,
)

TABLES = load_signals()
KINDS = {
    "exception",
    "errno",
    "http_status",
    "sqlstate",
    "grpc",
    "exit_code",
    "signal",
    "k8s_reason",
    "libvirt_error",
    "aws_error",
    "azure_error",
    "gcp_error",
}


def test_every_kind_the_design_names_is_shipped():
    assert {t.kind for t in TABLES} == KINDS
    assert len(builtin_tables()) == len(KINDS)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.kind)
def test_every_entry_reads_from_its_examples(table):
    assert check_signals(table) == []


@pytest.mark.parametrize(
    "line, kind, key, category",
    [
        ("OSError: [Errno 28] No space left on device: '/data/x'", "errno", "ENOSPC", Category.STORAGE),
        (
            'HTTP Request: GET http://api/v1 "HTTP/1.1 503 Service Unavailable"',
            "http_status",
            "503",
            Category.SERVICE_DEPENDENCY,
        ),
        ("HTTP Error 418: I'm a teapot", "http_status", "4xx", Category.CONFIGURATION),
        ("ERROR: canceling statement (SQLSTATE 57014)", "sqlstate", "57014", Category.TIMEOUT),
        ("SQLSTATE[08006] [7] server closed", "sqlstate", "08", Category.SERVICE_DEPENDENCY),
        ("status = StatusCode.DEADLINE_EXCEEDED", "grpc", "DEADLINE_EXCEEDED", Category.TIMEOUT),
        ("      Reason:       OOMKilled", "k8s_reason", "OOMKilled", Category.RESOURCE_EXHAUSTION),
        (
            "An error occurred (SlowDown) when calling the PutObject operation",
            "aws_error",
            "Throttling",
            Category.RESOURCE_EXHAUSTION,
        ),
    ],
)
def test_reads_the_signal_a_line_carries(line, kind, key, category):
    reader = SignalReader()
    index = next(i for i, t in enumerate(reader.tables) if t.table.kind == kind)
    signals = reader.read(line, index)
    assert [(s.key, s.category) for s in signals][:1] == [(key, category)]
    assert signals[0].pattern_id == f"signal:{kind}:{key}"


def test_an_exception_takes_its_nearest_base_category():
    reader = SignalReader()
    index = next(i for i, t in enumerate(reader.tables) if t.table.kind == "exception")
    (signal,) = reader.read("ConnectionRefusedError: [Errno 111] Connection refused", index)
    assert signal.category is Category.NETWORK
    assert signal.via == "builtins.ConnectionError"


def test_a_broad_exception_decides_nothing():
    reader = SignalReader()
    index = next(i for i, t in enumerate(reader.tables) if t.table.kind == "exception")
    assert reader.read("RuntimeError: something went wrong", index) == []


def test_an_ambiguous_short_name_decides_nothing():
    table = SignalTable.model_validate(
        {
            "kind": "exception",
            "description": "two libraries, one short name",
            "weight": 0.7,
            "case_sensitive": True,
            "reads": ["((?:[A-Za-z_][A-Za-z0-9_]*\\.)*(?:{keys}))(?::|$)"],
            "entries": [
                {
                    "key": "liba.Gone",
                    "category": "STATE_MISMATCH",
                    "description": "a",
                    "examples": ["liba.Gone: x"],
                },
                {"key": "libb.Gone", "category": "STORAGE", "description": "b", "examples": ["libb.Gone: x"]},
            ],
        }
    )
    reader = SignalReader([table])
    assert reader.read("Gone: x") == []
    assert [s.category for s in reader.read("libb.Gone: x")] == [Category.STORAGE]


def test_a_broken_table_is_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Bad Kind\ndescription: x\nweight: 2\nreads: []\nentries: []\n", encoding="utf-8")
    with pytest.raises(SignalTableError) as info:
        load_signals([bad])
    assert str(bad) in str(info.value)
    assert len(info.value.problems) >= 3


def test_signals_decide_when_no_pattern_does(mini_analyzer):
    log = 'INFO calling the export API\nERROR HTTP Request: POST https://api/x "HTTP/1.1 502 Bad Gateway"\n'
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.SERVICE_DEPENDENCY
    top = diagnosis.findings[0]
    assert top.pattern_id == "signal:http_status:502"
    assert top.evidence[0].line == 2
    assert "signal:http_status:502" in diagnosis.confidence_reason


def test_a_specific_pattern_outranks_a_signal_on_the_same_line(mini_analyzer):
    # errno 28 (STORAGE) and the mini library's own pattern agree; a 403 elsewhere is a signal only.
    log = (
        "WARNING got HTTP 403 from the metrics endpoint, ignored\n"
        'ERROR FATAL:  password authentication failed for user "etl" [Errno 13]\n'
    )
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.findings[0].pattern_id == "mini_001"
    assert diagnosis.root_cause is Category.CREDENTIAL


def test_the_scan_regexes_are_the_same_in_every_process():
    # They key the compiled-pattern cache: a set's order must not leak into them.
    import os
    import subprocess

    code = "from airflow_faultcat.core.patterns import signals; print(signals.SignalReader().scan_regexes)"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


def test_a_repeated_line_is_read_once(monkeypatch):
    from airflow_faultcat.core.patterns import signals

    reader = SignalReader(TABLES)
    reads: list[str] = []
    table_read = signals._CompiledTable.read

    def counted(self, text):
        reads.append(self.table.kind)
        return table_read(self, text)

    monkeypatch.setattr(signals._CompiledTable, "read", counted)
    line = "OSError: [Errno 28] No space left on device"
    first = reader.read(line)
    assert first
    for _ in range(1000):
        assert reader.read(line) == first
    assert len(reads) == len(reader.tables)  # every table's regexes ran once, not once per line
    reader.read(line, 0)
    assert len(reads) == len(reader.tables) + 1
