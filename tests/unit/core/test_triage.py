"""Triage against a baseline, replay commands, the failure digest."""

from __future__ import annotations

import json
import shlex

from airflow_faultcat.core.models import EvidenceBundle, FailureDigest
from airflow_faultcat.core.triage import FailureSummary, replay_commands, triage


def _s(fid: str, severity: str = "medium", count: int = 1) -> FailureSummary:
    return FailureSummary(fingerprint=fid, dag_id="etl", task_id="load", severity=severity, count=count)


def test_new_fingerprint_is_a_regression_ranked_by_severity_then_count():
    report = triage(
        {"a": _s("a"), "b": _s("b", "critical"), "c": _s("c", "medium", 5), "k": _s("k")},
        {"k": _s("k", count=2), "gone": _s("gone")},
        current_label="run 2",
        baseline_label="run 1",
    )
    assert report.status == "regression"
    assert [(c.kind, c.failure.fingerprint) for c in report.changes] == [
        ("new", "b"),
        ("new", "c"),
        ("new", "a"),
        ("recurring", "k"),
        ("resolved", "gone"),
    ]
    assert report.changes[3].count_before == 2
    assert [c.failure.fingerprint for c in report.new] == ["b", "c", "a"]


def test_only_old_failures_and_no_failures():
    assert triage({"k": _s("k")}, {"k": _s("k")}).status == "known_failures_only"
    assert triage({}, {"k": _s("k")}).status == "stable"
    assert triage({}, {}).status == "stable"


def test_replay_commands_are_quoted_for_a_shell():
    cmds = {c.kind: c for c in replay_commands("etl", "load", "manual__1", conf={"note": "it's; rm -rf /"})}
    argv = shlex.split(cmds["dag"].command)
    assert argv[:4] == ["airflow", "dags", "test", "etl"]
    assert json.loads(argv[argv.index("--conf") + 1]) == {"note": "it's; rm -rf /"}
    assert shlex.split(cmds["task"].command) == ["airflow", "tasks", "test", "etl", "load", "manual__1"]
    mapped = replay_commands("etl", "load", "manual__1", map_index=4)[0]
    assert shlex.split(mapped.command)[-2:] == ["--map-index", "4"]
    body = json.loads(shlex.split(cmds["clear"].command)[-1])
    assert body == {"dry_run": False, "only_failed": True, "dag_run_id": "manual__1", "task_ids": ["load"]}


def test_digest_is_part_of_the_bundle_schema():
    from airflow_faultcat.core.models import Diagnosis

    digest = FailureDigest(
        dag_id="etl",
        run_id="manual__1",
        root_cause="NETWORK",
        first_failed_task="extract",
        top_evidence="ConnectionRefusedError: [Errno 111] Connection refused",
        fingerprints=["fp-0123456789abcdef"],
        failed_tasks=["extract", "load"],
        replay=replay_commands("etl", "extract", "manual__1"),
    )
    diagnosis = Diagnosis(root_cause="NETWORK", confidence=0.9, confidence_reason="x", summary="y")
    bundle = EvidenceBundle(
        bundle_id="b", created_at="2026-01-01T00:00:00Z", diagnosis=diagnosis, digest=digest
    )
    again = EvidenceBundle.model_validate_json(bundle.model_dump_json())
    assert again.digest == digest
    schema = EvidenceBundle.model_json_schema()
    assert "FailureDigest" in schema["$defs"] and "ReplayCommand" in schema["$defs"]
