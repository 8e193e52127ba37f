"""Failure intelligence on the real stack: fingerprints, history, flakes, quarantine, triage, replay.

The history is read from the stack's Redis with the same ``FailureHistory`` the recovery DAG
writes through, and with the ``faultcat`` CLI as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.helpers import TERMINAL
from tests.integration.helpers import api_hook as _hook
from tests.integration.helpers import bundle_of as _bundle
from tests.integration.helpers import recoveries as _recoveries
from tests.integration.helpers import trigger as _trigger
from tests.integration.helpers import wait_run as _wait_run

pytestmark = pytest.mark.integration


def _wait_recovered(hook, dag_id: str, run_id: str, at_least: int = 1, timeout: float = 300) -> list[dict]:
    """Wait until the DagRun's recovery runs (one per failed try) have all ended."""
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = _recoveries(hook, dag_id, run_id)
        if len(runs) >= at_least and all(r["state"] in TERMINAL for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"recoveries of {dag_id} {run_id}: {[(r['dag_run_id'], r['state']) for r in runs]}")


def _fail_and_recover(hook, dag_id: str, conf: dict | None = None) -> tuple[str, dict]:
    """Run a Dag that fails, wait for its recovery; returns the run id and the bundle."""
    run_id = _trigger(hook, dag_id, conf)
    assert _wait_run(hook, dag_id, run_id)["state"] == "failed"
    (recovery,) = _wait_recovered(hook, dag_id, run_id)
    return run_id, _bundle(recovery["conf"])


@pytest.fixture
def history(stack, stack_env):
    import redis

    from airflow_faultcat import conf
    from airflow_faultcat.history import FailureHistory

    return FailureHistory(
        redis.Redis(port=stack.redis.port), conf.redis_key_prefix(), settings=conf.flake_settings()
    )


def _cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **stack.env(), "FAULTCAT_REDIS_URL": f"redis://127.0.0.1:{stack.redis.port}/0"}
    return subprocess.run(
        [sys.executable, "-m", "airflow_faultcat.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- fingerprints ----------------------------------------------------------------------------


def test_same_failure_in_three_dagruns_is_one_fingerprint_a_different_cause_another(stack_env, history):
    hook = _hook()
    bundles = [_fail_and_recover(hook, "it_fp_same")[1] for _ in range(3)]
    fps = {b["diagnosis"]["fingerprint"] for b in bundles}
    assert len(fps) == 1, [b["diagnosis"]["fingerprint_basis"] for b in bundles]
    (fp,) = fps
    record = history.get(fp)
    assert record.occurrences == 3 and record.tasks == ["it_fp_same.load_batch"]
    assert [b["history"]["regression"] for b in bundles] == [True, False, False]
    assert [b["history"]["occurrences"] for b in bundles] == [1, 2, 3]

    _, other = _fail_and_recover(hook, "it_fp_same", {"mode": "key_error"})
    assert other["diagnosis"]["fingerprint"] != fp
    assert {r.fingerprint for r in history.records(dag_id="it_fp_same")} == {
        fp,
        other["diagnosis"]["fingerprint"],
    }

    # The bundle's digest of the failed DagRun, and the note with the fingerprint and replay.
    digest = bundles[0]["digest"]
    assert digest["first_failed_task"] == "load_batch" and digest["fingerprints"] == [fp]
    assert digest["root_cause"] == bundles[0]["diagnosis"]["root_cause"]
    assert digest["top_evidence"] and digest["replay"][0]["command"].startswith(
        "airflow tasks test it_fp_same"
    )
    ti = hook.get_task_instance("it_fp_same", bundles[0]["context"]["run_id"], "load_batch", -1)
    assert (
        f"Fingerprint: {fp}" in ti["note"]
        and "Replay: airflow tasks test it_fp_same load_batch" in ti["note"]
    )


def test_triage_says_regression_for_a_new_failure_and_known_failures_only_for_old_ones(stack, stack_env):
    hook = _hook()
    base, _ = _fail_and_recover(hook, "it_fp_same")
    new, _ = _fail_and_recover(hook, "it_fp_same", {"mode": "key_error"})
    again, _ = _fail_and_recover(hook, "it_fp_same")

    regression = _cli(stack, "triage", "--dag", "it_fp_same", "--run", new, "--baseline", base, "--json")
    assert regression.returncode == 1, regression.stderr
    report = json.loads(regression.stdout)
    assert report["status"] == "regression"
    assert [c["kind"] for c in report["changes"]] == ["new", "resolved"]

    known = _cli(stack, "triage", "--dag", "it_fp_same", "--run", again, "--baseline", base)
    assert known.returncode == 0, known.stderr
    assert known.stdout.startswith("known_failures_only:")

    window = _cli(stack, "triage", "--baseline", "1h", "--dag", "it_fp_same", "--json")
    assert json.loads(window.stdout)["status"] in ("regression", "known_failures_only")
    listing = _cli(stack, "history", "--dag", "it_fp_same")
    assert listing.returncode == 0 and "it_fp_same.load_batch" in listing.stdout


def test_replay_command_run_as_shown_reproduces_the_failure(stack, stack_env):
    hook = _hook()
    _, bundle = _fail_and_recover(hook, "it_fp_same")
    (command,) = [r["command"] for r in bundle["diagnosis"]["replay"] if r["kind"] == "task"]
    env = {**os.environ, **stack.env()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    # Airflow 3's `airflow tasks test` exits 0 when the task fails: the reproduction is in the output.
    assert "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/it-batches/" in output, (
        output[-3000:]
    )


# -- flakes ----------------------------------------------------------------------------------


def test_fail_then_pass_is_flaky_after_two_runs_and_healthy_after_clean_runs(stack_env, history):
    hook = _hook()
    fingerprints = set()
    for _ in range(2):
        run_id = _trigger(hook, "it_flaky", {"flaky": True})
        (recovery,) = _wait_recovered(hook, "it_flaky", run_id)
        assert _wait_run(hook, "it_flaky", run_id)["state"] == "success"
        bundle = _bundle(recovery["conf"])
        fingerprints.add(bundle["diagnosis"]["fingerprint"])
        assert bundle["outcome"]["status"] == "retry_succeeded", bundle["outcome"]
    (fp,) = fingerprints
    deadline = time.monotonic() + 30
    while history.get(fp).pass_on_retry < 2 and time.monotonic() < deadline:
        time.sleep(1)
    record = history.get(fp)
    assert (record.status, record.pass_on_retry, record.flake_class) == ("flaky", 2, "FLAKE-NET"), (
        record.status_reason
    )

    # The next failure of a flaky fingerprint is retried at once, the history says why.
    run_id = _trigger(hook, "it_flaky", {"flaky": True})
    (recovery,) = _wait_recovered(hook, "it_flaky", run_id)
    bundle = _bundle(recovery["conf"])
    assert bundle["history"]["status"] == "flaky"
    assert any(s.startswith(f"history: {fp} is flaky") for s in bundle["plan"]["policy_sources"])

    for _ in range(2):
        clean = _trigger(hook, "it_flaky", {"flaky": False})
        assert _wait_run(hook, "it_flaky", clean)["state"] == "success"
    deadline = time.monotonic() + 30
    while history.get(fp).status != "healthy" and time.monotonic() < deadline:
        time.sleep(1)
    assert history.get(fp).status == "healthy", history.get(fp).status_reason


# -- quarantine ------------------------------------------------------------------------------


def test_quarantined_fingerprint_is_not_escalated_until_it_expires(stack, stack_env, github_standin):
    from tests.standins.fixtures import GITHUB_REPOSITORY

    hook = _hook()
    _, first = _fail_and_recover(hook, "it_fp_quarantine")
    fp = first["diagnosis"]["fingerprint"]
    assert first["outcome"]["status"] == "escalated"
    issues = [i for i in github_standin.issues(GITHUB_REPOSITORY) if "in it_fp_quarantine." in i.title]
    assert len(issues) == 1 and issues[0].title.startswith("[faultcat] [SEV2] ")
    requests_before = len(github_standin.requests)

    added = _cli(
        stack, "quarantine", "add", fp, "--owner", "data-oncall", "--reason", "IT-7", "--expires", "1m"
    )
    assert added.returncode == 0, added.stderr
    expires = time.monotonic() + 60
    _, second = _fail_and_recover(hook, "it_fp_quarantine")
    assert second["diagnosis"]["fingerprint"] == fp
    assert second["outcome"]["status"] == "quarantined" and "IT-7" in second["outcome"]["detail"]
    assert second["history"]["quarantine_active"] is True
    assert len(github_standin.requests) == requests_before, "a quarantined failure reached GitHub"

    listed = _cli(stack, "quarantine", "list")
    assert f"active  {fp}" in listed.stdout
    time.sleep(max(0.0, expires - time.monotonic() + 1))
    listed = _cli(stack, "quarantine", "list")
    assert f"EXPIRED {fp}" in listed.stdout and "1 expired" in listed.stdout
    _, third = _fail_and_recover(hook, "it_fp_quarantine")
    assert third["outcome"]["status"] in ("escalated", "merged")
    assert any("expired" in w for w in third["plan"]["policy_warnings"])
    assert len(github_standin.requests) > requests_before
