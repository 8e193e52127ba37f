"""Capturing a failure, its recovery run id, the spool and the recovery conf (no Airflow stack)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from airflow_faultcat import spool
from airflow_faultcat.failures import dispatch, failure_context, is_retry, recovery_run_id
from airflow_faultcat.operators.recovery import InvalidRecoveryConf, failure_from_conf, note_text


def test_recovery_run_id_is_stable_and_distinct():
    a = recovery_run_id("etl", "manual__2026-01-01T00:00:00+00:00", "load", -1, 1)
    assert a == recovery_run_id("etl", "manual__2026-01-01T00:00:00+00:00", "load", -1, 1)
    assert a.startswith("faultcat__etl.load.try1__")
    others = {
        recovery_run_id("etl", "manual__2026-01-01T00:00:00+00:00", "load", -1, 2),
        recovery_run_id("etl", "manual__2026-01-01T00:00:00+00:00", "load", 3, 1),
        recovery_run_id("etl", "scheduled__2026-01-01T00:00:00+00:00", "load", -1, 1),
    }
    assert a not in others and len(others) == 3
    assert len(recovery_run_id("d" * 250, "r", "t" * 250, -1, 1)) < 250


def test_failure_context_from_a_real_exception():
    try:
        open("/nonexistent-faultcat/settings.yaml")
    except OSError as exc:
        error = exc
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=None, try_number=2, max_tries=3)
    ctx = failure_context(ti, error, extra={"team": "data"})
    assert ctx.exception_type == "FileNotFoundError"
    assert "No such file or directory" in ctx.exception_message
    assert ctx.traceback.startswith("Traceback (most recent call last)")
    assert ctx.map_index == -1 and ctx.try_number == 2 and ctx.extra == {"team": "data"}
    assert ctx.host.memory_total_bytes > 0 and ctx.host.disk_free_bytes
    assert ctx.captured_at is not None


GH_TOKEN = "ghp_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"


def _raise_chained(message: str) -> BaseException:
    try:
        try:
            raise KeyError("connection lookup")
        except KeyError as cause:
            raise RuntimeError(message) from cause
    except RuntimeError as exc:
        return exc


def test_the_failure_is_scrubbed_when_it_is_captured():
    """Message, traceback (causes included) and extra carry no secret into the conf or spool."""
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1, max_tries=0)
    error = _raise_chained(f"login failed with password=Hunter2-Fake! token {GH_TOKEN}")
    ctx = failure_context(ti, error, extra={"api_key": "k-123456789", "note": f"Bearer {GH_TOKEN}"})
    dumped = str(ctx.model_dump(mode="json"))
    assert "Hunter2-Fake!" not in dumped and GH_TOKEN not in dumped and "k-123456789" not in dumped
    assert ctx.exception_message == "login failed with password=*** token ***"
    assert "The above exception was the direct cause" in ctx.traceback
    assert "RuntimeError: login failed with password=*** token ***" in ctx.traceback


def test_a_huge_message_is_bounded_and_the_frames_are_kept():
    from airflow_faultcat.failures import MAX_MESSAGE_CHARS, MAX_TRACEBACK_CHARS

    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1, max_tries=0)
    error = _raise_chained("rows: " + "0123456789 " * 2_000_000 + GH_TOKEN)
    ctx = failure_context(ti, error)
    assert len(ctx.exception_message) <= MAX_MESSAGE_CHARS
    assert len(ctx.traceback) <= MAX_TRACEBACK_CHARS
    assert "in _raise_chained" in ctx.traceback  # the frames, not only the message
    assert GH_TOKEN[:8] not in ctx.exception_message + ctx.traceback


def test_a_secret_astride_the_message_cut_leaves_no_prefix():
    from airflow_faultcat.failures import MAX_MESSAGE_CHARS

    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1, max_tries=0)
    message = "x " * ((MAX_MESSAGE_CHARS - 10) // 2) + GH_TOKEN + " tail"
    ctx = failure_context(ti, RuntimeError(message))
    assert "ghp_" not in ctx.exception_message and "aBcDe" not in ctx.exception_message


def test_the_spooled_conf_is_scrubbed_even_for_a_context_built_elsewhere(tmp_path, monkeypatch):
    from airflow_faultcat.core.models import FailureContext

    monkeypatch.setenv("AIRFLOW__FAULTCAT__SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_UNREACHABLE", "faultcat-api://u:p@127.0.0.1:9")
    ctx = FailureContext(
        dag_id="d", run_id="r", task_id="t", try_number=1, exception_message=f"token={GH_TOKEN}"
    )
    assert dispatch(ctx, recovery_dag_id="faultcat_recovery", conn_id="faultcat_api_unreachable") == "spooled"
    (path,) = tmp_path.glob("*.json")
    assert GH_TOKEN not in path.read_text()


def test_is_retry_reads_the_state():
    assert is_retry(SimpleNamespace(state="up_for_retry"))
    assert not is_retry(SimpleNamespace(state="failed"))
    assert not is_retry(SimpleNamespace())


def test_unreachable_api_spools_within_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_UNREACHABLE", "faultcat-api://u:p@127.0.0.1:9")
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1, max_tries=0)
    ctx = failure_context(ti, ConnectionRefusedError(111, "Connection refused"))
    import airflow_faultcat.hooks.airflow_api  # noqa: F401 - import time is not the callback's

    started = time.monotonic()
    outcome = dispatch(ctx, recovery_dag_id="faultcat_recovery", conn_id="faultcat_api_unreachable")
    assert outcome == "spooled"
    assert time.monotonic() - started < 2.0
    (entry,) = spool.pending(tmp_path)
    assert entry.dag_run_id == recovery_run_id("d", "r", "t", -1, 1)
    assert entry.conf["exception_type"] == "ConnectionRefusedError"
    # The same failure again overwrites, never duplicates.
    dispatch(ctx, recovery_dag_id="faultcat_recovery", conn_id="faultcat_api_unreachable")
    assert len(spool.pending(tmp_path)) == 1


def test_unreadable_spool_files_are_left_alone(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    spool.write(spool.SpoolEntry("faultcat_recovery", "run-1", {"dag_id": "d"}), tmp_path)
    assert [e.dag_run_id for e in spool.pending(tmp_path)] == ["run-1"]
    assert (tmp_path / "broken.json").exists()


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (
            {"dag_id": "d", "run_id": "r", "taks_id": "t", "try_number": 1},
            "conf field 'taks_id' is not a FailureContext",
        ),
        ({"dag_id": "d", "run_id": "r", "task_id": "", "try_number": 1}, "conf field 'task_id' is required"),
        ({"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": "many"}, "conf field 'try_number'"),
        (
            {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1, "map_index": "x"},
            "conf field 'map_index'",
        ),
        (["not", "a", "dict"], "conf must be a JSON object"),
    ],
)
def test_bad_conf_names_the_field(conf, message):
    with pytest.raises(InvalidRecoveryConf, match=message.replace("(", r"\(")):
        failure_from_conf(conf)


def test_good_conf_is_a_failure_context():
    ctx = failure_from_conf({"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": "2", "map_index": 4})
    assert (ctx.try_number, ctx.map_index) == (2, 4)


def test_note_fits_the_api_limit():
    from airflow_faultcat.core.diagnose import Analyzer

    diagnosis = Analyzer().diagnose("ERROR OSError: [Errno 28] No space left on device " + "x" * 3000 + "\n")
    note = note_text(diagnosis, "file:///evidence/" + "y" * 400 + "/bundle.json")
    assert len(note) <= 1000
    assert note.startswith("faultcat: STORAGE (")
    assert note.endswith("/bundle.json")


def test_note_says_what_the_recovery_did_and_by_which_rule():
    from airflow_faultcat.core.diagnose import Analyzer
    from airflow_faultcat.core.models import RecoveryAction, RecoveryOutcome

    diagnosis = Analyzer().diagnose("ERROR OSError: [Errno 28] No space left on device " + "x" * 3000 + "\n")
    outcome = RecoveryOutcome(
        status="escalated",
        action=RecoveryAction.MANUAL_FIX,
        rule="policy: STORAGE retry=approval; " + "r" * 900,
        detail="GitHub #12 opened",
    )
    note = note_text(diagnosis, "file:///evidence/bundle.json", outcome)
    assert len(note) <= 1000
    assert "\nRecovery: escalated - GitHub #12 opened (rule: policy: STORAGE retry=approval" in note
    assert note.endswith("\nEvidence bundle: file:///evidence/bundle.json")


def test_an_unreachable_api_spools_to_redis_where_every_worker_drains_it(tmp_path, monkeypatch, redis_conn):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_UNREACHABLE", "faultcat-api://u:p@127.0.0.1:9")
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=2, max_tries=0)
    ctx = failure_context(ti, ConnectionRefusedError(111, "Connection refused"))
    started = time.monotonic()
    assert dispatch(ctx, recovery_dag_id="faultcat_recovery", conn_id="faultcat_api_unreachable") == "spooled"
    assert time.monotonic() - started < 3.0
    run_id = recovery_run_id("d", "r", "t", -1, 2)
    assert [e.dag_run_id for e in spool.pending_redis()] == [run_id]
    assert spool.pending(tmp_path) == []  # nothing on this host's disk

    class Api:  # the REST API's trigger, refusing the first time and then accepting
        def __init__(self):
            self.calls = 0

        def trigger_dag_run(self, dag_id, dag_run_id, conf=None, note=None):
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("still down")
            return {"dag_run_id": dag_run_id}

    api = Api()
    sent, kept = spool.replay(api, tmp_path)
    assert sent == [] and [run_id for run_id, _ in kept] == [run_id]
    assert len(spool.pending_redis()) == 1  # kept for the next drain
    sent, kept = spool.replay(api, tmp_path)
    assert sent == [run_id] and kept == [] and spool.pending_redis() == []


def test_with_redis_down_too_the_failure_is_spooled_to_this_hosts_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_UNREACHABLE", "faultcat-api://u:p@127.0.0.1:9")
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", "redis://127.0.0.1:9/0")
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=3, max_tries=0)
    ctx = failure_context(ti, ConnectionRefusedError(111, "Connection refused"))
    assert dispatch(ctx, recovery_dag_id="faultcat_recovery", conn_id="faultcat_api_unreachable") == "spooled"
    assert [e.dag_run_id for e in spool.pending(tmp_path)] == [recovery_run_id("d", "r", "t", -1, 3)]
