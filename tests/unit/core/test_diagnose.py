from __future__ import annotations

import io
import json

from airflow_faultcat.core.diagnose import BLOCK_SIZE, MAX_LINE_BYTES
from airflow_faultcat.core.models import Category, FailureContext


def _json_line(event: str, level: str = "info", **extra) -> str:
    return json.dumps({"timestamp": "2026-11-20T00:00:00Z", "level": level, "event": event, **extra})


def _error_detail(exc_type: str, exc_value: str) -> str:
    detail = [
        {"exc_type": exc_type, "exc_value": exc_value, "frames": [], "exceptions": [], "is_group": False}
    ]
    return _json_line("Task failed with exception", "error", error_detail=detail)


def test_finds_the_cause_with_its_evidence_line(mini_analyzer):
    log = 'INFO start\nINFO working\nERROR FATAL:  password authentication failed for user "etl"\n'
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.CREDENTIAL
    top = diagnosis.findings[0]
    assert top.pattern_id == "mini_001"
    assert top.evidence[0].line == 3
    assert "password authentication failed" in top.evidence[0].text
    assert diagnosis.confidence >= 0.8
    assert top.confidence_reason == diagnosis.confidence_reason
    assert "mini_001" in diagnosis.confidence_reason


def test_lines_at_the_failure_outweigh_earlier_noise(mini_analyzer):
    # A refused connection early on (retried and recovered), then the real failure: a timeout.
    noise = [f"INFO step {i}" for i in range(400)]
    log = "\n".join(
        [
            "WARNING [Errno 111] Connection refused, retrying",
            *noise,
            "Traceback (most recent call last):",
            "airflow.exceptions.AirflowTaskTimeout: Timeout, PID: 4121",
        ]
    )
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.TIMEOUT
    ruled_out = {r.pattern_id: r for r in diagnosis.findings[0].alternatives_ruled_out}
    assert "before the failure" in ruled_out["mini_002"].reason


def test_the_exception_in_the_context_outweighs_the_log(mini_analyzer):
    context = FailureContext(exception_type="OSError", exception_message="[Errno 28] No space left on device")
    log = "ERROR [Errno 111] Connection refused\n"
    diagnosis = mini_analyzer.diagnose(log, context=context)
    assert diagnosis.root_cause is Category.STORAGE
    assert diagnosis.findings[0].evidence[0].source == "exception"


def test_a_specific_pattern_beats_a_generic_one(mini_analyzer):
    log = "ERROR Exception in worker\nERROR [Errno 111] Connection refused\n"
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.NETWORK
    generic = next(f for f in diagnosis.findings if f.pattern_id == "mini_004")
    assert generic.score < diagnosis.findings[0].score
    assert "generic" in diagnosis.findings[0].alternatives_ruled_out[0].reason


def test_agreeing_evidence_raises_confidence(mini_analyzer):
    lone = mini_analyzer.diagnose("ERROR x Connection refused\nERROR Exception\n")
    agreeing = mini_analyzer.diagnose(
        "ERROR x Connection refused\nERROR Max retries exceeded with url: /v1\nERROR Exception\n"
    )
    assert lone.root_cause is agreeing.root_cause is Category.NETWORK
    assert agreeing.confidence > lone.confidence


def test_airflow3_json_error_detail_is_decoded(mini_analyzer):
    log = "\n".join(
        [_json_line("Reading rows"), _error_detail("OSError", "[Errno 28] No space left on device: '/data'")]
    )
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.STORAGE
    evidence = diagnosis.findings[0].evidence[0]
    assert evidence.line == 2
    assert evidence.field == "error_detail"
    assert evidence.text == "OSError: [Errno 28] No space left on device: '/data'"


def test_json_event_is_shown_instead_of_the_raw_line(mini_analyzer):
    log = _json_line("Connection refused by db:5432", "error") + "\n"
    evidence = mini_analyzer.diagnose(log).findings[0].evidence[0]
    assert evidence.text == "Connection refused by db:5432"
    assert evidence.field == "event"


def test_nothing_matches_gives_unknown_with_a_gap(mini_analyzer):
    diagnosis = mini_analyzer.diagnose("INFO all good\nINFO still good\n")
    assert diagnosis.root_cause is Category.UNKNOWN
    assert diagnosis.confidence == 0.0
    assert "no pattern" in diagnosis.diagnostics_gap
    assert "traceback" in diagnosis.diagnostics_gap
    assert diagnosis.findings == []


def test_no_input_at_all_says_so(mini_analyzer):
    diagnosis = mini_analyzer.diagnose(None)
    assert diagnosis.root_cause is Category.UNKNOWN
    assert "no log text" in diagnosis.diagnostics_gap


def test_split_evidence_lowers_confidence_and_says_why(mini_analyzer):
    diagnosis = mini_analyzer.diagnose("ERROR Connection refused\nERROR AirflowTaskTimeout\n")
    assert diagnosis.confidence < 0.8
    assert "next best" in diagnosis.confidence_reason


def test_same_input_same_output(mini_analyzer):
    log = "ERROR Connection refused\nERROR AirflowTaskTimeout\nERROR Exception\n" * 3
    first = mini_analyzer.diagnose(log).model_dump(exclude={"stats"})
    second = mini_analyzer.diagnose(log).model_dump(exclude={"stats"})
    assert first == second


def test_streams_across_blocks_with_correct_line_numbers(mini_analyzer):
    filler = ("INFO " + "x" * 95 + "\n").encode()
    lines_before = (BLOCK_SIZE // len(filler)) * 2 + 7  # past two block boundaries
    log = filler * lines_before + b"ERROR No space left on device\n" + filler * 10
    diagnosis = mini_analyzer.diagnose(io.BytesIO(log))
    assert diagnosis.root_cause is Category.STORAGE
    assert diagnosis.findings[0].evidence[0].line == lines_before + 1
    assert diagnosis.stats.lines_scanned == lines_before + 11
    assert diagnosis.stats.bytes_scanned == len(log)


def test_evidence_is_bounded_but_occurrences_are_counted(mini_analyzer):
    log = "ERROR Connection refused\n" * 5000
    finding = mini_analyzer.diagnose(log).findings[0]
    assert finding.occurrences == 5000
    assert len(finding.evidence) <= 2 * mini_analyzer.keep


def test_evidence_text_is_scrubbed(mini_library):
    from airflow_faultcat.core.diagnose import Analyzer

    analyzer = Analyzer(mini_library, known_secrets=["hunter2-secret"])
    log = "ERROR Connection refused to postgresql://etl:hunter2-secret@db:5432/x\n"
    text = analyzer.diagnose(log).findings[0].evidence[0].text
    assert "hunter2-secret" not in text
    assert "Connection refused" in text


def test_evidence_is_scrubbed_before_it_is_cut(mini_analyzer):
    """A token that straddles the evidence cut is masked whole: no prefix of it is left."""
    from airflow_faultcat.core.diagnose import MAX_EVIDENCE_TEXT

    token = "ghp_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
    head = "ERROR Connection refused to db:5432 while retrying with header "
    log = head + "x" * (MAX_EVIDENCE_TEXT - len(head) - 10) + " " + token + " and more\n"
    text = mini_analyzer.diagnose(log).findings[0].evidence[0].text
    assert len(text) <= MAX_EVIDENCE_TEXT
    assert "ghp_" not in text and "aBcDe" not in text
    assert text.startswith("ERROR Connection refused")


def test_the_text_window_covers_the_scrub_margin():
    from airflow_faultcat.core import diagnose
    from airflow_faultcat.core.scrub import CUT_MARGIN

    assert diagnose._TEXT_WINDOW == diagnose.MAX_EVIDENCE_TEXT + CUT_MARGIN


def test_context_is_echoed_in_the_diagnosis(mini_analyzer):
    context = FailureContext(dag_id="etl", run_id="manual__1", task_id="load", try_number=2)
    diagnosis = mini_analyzer.diagnose("ERROR Connection refused\n", context=context)
    assert diagnosis.context == context


def _frames(count: int) -> list[str]:
    return [f'  File "/opt/etl/step_{i}.py", line {i + 1}, in run\n    step_{i}()' for i in range(count)]


def test_a_chained_exception_is_followed_to_its_cause(mini_analyzer):
    # The first exception (a refused connection) caused the second (a timeout wrapper); the frames
    # between them are longer than the window that groups error lines.
    log = "\n".join(
        [
            *[f"INFO step {i}" for i in range(50)],
            "Traceback (most recent call last):",
            *_frames(60),
            "ConnectionRefusedError: [Errno 111] Connection refused",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            *_frames(60),
            "airflow.exceptions.AirflowTaskTimeout: gave up waiting for the warehouse",
            "ERROR - Marking task as FAILED.",
        ]
    )
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.NETWORK
    assert "the exception in the log" in diagnosis.confidence_reason
    timeout = next(f for f in diagnosis.findings if f.category is Category.TIMEOUT)
    assert timeout.score < diagnosis.findings[0].score


def test_symptoms_step_back_behind_the_error_that_explains_them():
    from airflow_faultcat.core.diagnose import Analyzer

    prefix = "[2026-11-20, 03:00:00 UTC]"
    log = "\n".join(
        [
            f"{prefix} {{taskinstance.py:1}} INFO - Starting attempt 1 of 1",
            f"{prefix} {{subprocess.py:93}} INFO - cp: error writing '/data/o.csv': No space left on device",
            *[f"{prefix} {{subprocess.py:93}} INFO - cleanup {i}" for i in range(30)],
            f"{prefix} {{taskinstance.py:1}} ERROR - Received SIGTERM. Terminating subprocesses.",
            f"{prefix} {{local_task_job.py:1}} INFO - Task exited with return code Negsignal.SIGKILL",
        ]
    )
    diagnosis = Analyzer().diagnose(log)
    assert diagnosis.root_cause is Category.STORAGE
    assert diagnosis.findings[0].evidence[0].line == 2


def test_a_symptom_alone_still_answers():
    from airflow_faultcat.core.diagnose import Analyzer

    diagnosis = Analyzer().diagnose("INFO - Task exited with return code Negsignal.SIGKILL\n")
    assert diagnosis.root_cause is Category.RESOURCE_EXHAUSTION


def test_the_confidence_reason_says_what_raised_and_lowered_it(mini_analyzer):
    diagnosis = mini_analyzer.diagnose('ERROR FATAL:  password authentication failed for user "etl"\n')
    assert "calibrated from raw" in diagnosis.confidence_reason
    assert "raised by a specific pattern" in diagnosis.confidence_reason


def test_a_long_line_of_repeated_matches_is_read_once(mini_analyzer):
    # Each match used to walk back to its line's start: quadratic in the line's length.
    line = "Connection refused; " * 50_000
    diagnosis = mini_analyzer.diagnose(f"INFO start\nERROR {line}\n")
    assert diagnosis.root_cause is Category.NETWORK
    assert diagnosis.findings[0].evidence[0].line == 2
    assert diagnosis.findings[0].occurrences == 1


def test_a_line_past_the_line_limit_is_matched_in_its_head_and_counted_once(mini_analyzer):
    head = "ERROR Connection refused; "
    long_line = head + "x" * (3 * MAX_LINE_BYTES)
    log = f"INFO start\n{long_line}\nINFO after\nERROR [Errno 111] Connection refused\n"
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.NETWORK
    assert diagnosis.stats.lines_scanned == 4
    assert diagnosis.stats.bytes_skipped == len(long_line) - MAX_LINE_BYTES
    assert {e.line for f in diagnosis.findings for e in f.evidence} <= {2, 4}
    # Only the head is matched: an error after the first MAX_LINE_BYTES of a line is not read.
    tail_only = mini_analyzer.diagnose("x" * (2 * MAX_LINE_BYTES) + " Connection refused\n")
    assert tail_only.root_cause is Category.UNKNOWN
    assert tail_only.stats.lines_scanned == 1


def test_json_nested_too_deep_is_text_not_a_crash(mini_analyzer):
    deep = "[" * 5000 + "]" * 5000
    detail = {"exc_type": "X", "exc_value": "Connection refused", "exceptions": []}
    node = detail
    for _ in range(200):  # causes within causes, deeper than the analyzer follows
        child = {"exc_type": "Y", "exc_value": "", "exceptions": []}
        node["exceptions"].append(child)
        node = child
    log = "\n".join(
        [
            '{"event": "start", "level": "info", "nested": ' + deep + "}",
            json.dumps({"event": "Task failed with exception", "level": "error", "error_detail": [detail]}),
        ]
    )
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.NETWORK


def test_a_traceback_header_ends_the_search_for_the_one_before(mini_analyzer):
    # Each header used to look 500 lines ahead for its message: 200k indented headers took 55 s.
    log = "  Traceback (most recent call last):\n" * 2000 + "ERROR [Errno 111] Connection refused\n"
    diagnosis = mini_analyzer.diagnose(log)
    assert diagnosis.root_cause is Category.NETWORK


def test_an_error_detail_with_a_latin1_byte_or_a_lone_surrogate_is_still_read(mini_analyzer):
    """Copied logs carry a stray non-UTF-8 byte, or a "\\ud800" escape: the record is still read."""
    base = (
        b'{"event":"Task failed with exception","error_detail":[{"exc_type":"ConnectionRefusedError",'
        b'"exc_value":"Connection refused to db:5432 %s","frames":[]}]}\n'
    )
    for extra in (b"\xe9t\xe9", b"\\ud800"):
        diagnosis = mini_analyzer.diagnose(base.replace(b"%s", extra))
        assert diagnosis.root_cause == Category.NETWORK


def test_a_repeated_line_is_decoded_once_per_block(mini_analyzer, monkeypatch):
    from airflow_faultcat.core import diagnose

    calls: list[bytes] = []
    display_text = diagnose._display_text

    def counted(line: bytes):
        calls.append(line)
        return display_text(line)

    monkeypatch.setattr(diagnose, "_display_text", counted)
    line = "[2026-11-20T03:14:15] {db.py:42} ERROR - OSError: [Errno 28] No space left on device\n"
    result = mini_analyzer.diagnose(line * 5000)
    assert result.findings and result.findings[0].occurrences == 5000
    assert len(calls) == 1


def test_a_retry_loop_log_keeps_little_python_memory(mini_analyzer):
    import tracemalloc

    line = b"[2026-11-20T03:14:15] {http.py:88} ERROR - ConnectionRefusedError: [Errno 111] Connection"
    line += b" refused\n"
    log = line * (2 * BLOCK_SIZE // len(line))
    tracemalloc.start()
    try:
        mini_analyzer.diagnose(io.BytesIO(log))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A block's hits and lines, not the log: well under 2 MB of text held per MB read.
    assert peak < 40 << 20


def test_a_log_matching_most_of_the_library_lists_at_most_max_findings():
    from airflow_faultcat.core.diagnose import MAX_FINDINGS, Analyzer

    analyzer = Analyzer()
    lines = [e for p in analyzer.library.patterns for e in p.examples if "\n" not in e]
    diagnosis = analyzer.diagnose("\n".join(lines))
    assert len(diagnosis.findings) == MAX_FINDINGS
    assert diagnosis.findings[0].confidence >= max(f.confidence for f in diagnosis.findings[1:])
