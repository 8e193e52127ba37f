"""Tests for :mod:`airflow_faultcat.core.escalation`: dedup key, marker, rendering, limits, scrubbing."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from airflow_faultcat.core.escalation import (
    BODY_MAX_CHARS,
    SLACK_TEXT_MAX_CHARS,
    TITLE_MAX_CHARS,
    EscalationSummary,
    dedup_key,
    find_marker,
    marker,
    render_issue,
    render_recurrence_comment,
    render_resolved_comment,
    render_slack_text,
)
from airflow_faultcat.core.models import Category

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PASSWORD = "Hunter2-Sup3rSecret"
LEAKY_LINE = f"botocore.exceptions.ClientError: key {AWS_KEY} rejected; retrying with password={PASSWORD}"


def summary(**overrides) -> EscalationSummary:
    values = dict(
        dedup_key=dedup_key("etl_daily", "CREDENTIAL", "aws.invalid_access_key"),
        dag_id="etl_daily",
        task_id="load_s3",
        run_id="scheduled__2024-05-01T00:00:00+00:00",
        try_number=2,
        root_cause="CREDENTIAL",
        confidence=0.93,
        pattern_id="aws.invalid_access_key",
        title="AWS rejected the access key",
        top_evidence="botocore.exceptions.ClientError: InvalidAccessKeyId when calling PutObject",
        evidence_location="task log line 42",
        suggestions=["Rotate the key in connection aws_default", "Check the IAM policy"],
        decision="not retried: policy CREDENTIAL retry=never",
        count=1,
        task_instances=["scheduled__2024-05-01T00:00:00+00:00/load_s3/-1"],
        ti_url="http://airflow.example:8080/dags/etl_daily/runs/r1/tasks/load_s3?try_number=2",
        bundle_location="file:///var/faultcat/bundles/etl_daily/r1/load_s3.json",
        first_seen=datetime(2024, 5, 1, 0, 5, tzinfo=timezone.utc),
        last_seen=datetime(2024, 5, 1, 0, 9, tzinfo=timezone.utc),
    )
    values.update(overrides)
    return EscalationSummary(**values)


# ---- dedup key and marker ------------------------------------------------------------------


def test_dedup_key_is_stable_short_and_distinct():
    key = dedup_key("etl_daily", "CREDENTIAL", "aws.invalid_access_key")
    assert re.fullmatch(r"fc-[0-9a-f]{16}", key)
    assert key == dedup_key("etl_daily", Category.CREDENTIAL, "aws.invalid_access_key")
    others = {
        dedup_key("etl_daily", "CREDENTIAL", None),
        dedup_key("etl_daily", "NETWORK", "aws.invalid_access_key"),
        dedup_key("etl_hourly", "CREDENTIAL", "aws.invalid_access_key"),
        # NUL separation: shifting text between fields gives another key.
        dedup_key("etl_dailyC", "REDENTIAL", "aws.invalid_access_key"),
    }
    assert key not in others and len(others) == 4


def test_marker_round_trip_and_rejects_foreign_keys():
    key = dedup_key("d", "TIMEOUT", None)
    assert marker(key) == f"<!-- faultcat:dedup={key} -->"
    assert find_marker(f"some text\n\n{marker(key)}\n") == key
    assert find_marker("") is None and find_marker(None) is None
    assert find_marker("no marker <!-- faultcat:dedup=fc-zz -->") is None
    with pytest.raises(ValueError):
        marker("fc-123")


def test_find_marker_takes_the_last_marker_line():
    first, last = dedup_key("a", "X", None), dedup_key("b", "X", None)
    assert find_marker(f"{marker(first)}\nedited by a human\n{marker(last)}") == last


def test_evidence_cannot_plant_another_marker():
    foreign = dedup_key("other_dag", "NETWORK", None)
    s = summary(top_evidence=f"log says {marker(foreign)}", suggestions=[marker(foreign)])
    _, body = render_issue(s)
    assert find_marker(body) == s.dedup_key
    assert body.count("faultcat:dedup=") == 1, "only the real marker may carry the marker text"
    assert find_marker(render_recurrence_comment(s)) is None


# ---- issue ---------------------------------------------------------------------------------


def test_render_issue_title_and_body():
    s = summary(count=3, task_instances=["r1/load_s3/-1", "r2/load_s3/-1", "r3/load_s3/-1"])
    title, body = render_issue(s)
    assert title == "[faultcat] CREDENTIAL in etl_daily.load_s3: AWS rejected the access key"
    assert "**Root cause:** CREDENTIAL (confidence 0.93): AWS rejected the access key" in body
    assert "**Pattern:** `aws.invalid_access_key`" in body
    assert "try 2" in body
    assert "Top evidence (task log line 42):\n\n```text\nbotocore.exceptions.ClientError:" in body
    assert "not retried: policy CREDENTIAL retry=never" in body
    assert "- Rotate the key in connection aws_default\n- Check the IAM policy" in body
    assert (
        "**TaskInstances with this failure:** 3\n- `r1/load_s3/-1`\n- `r2/load_s3/-1`\n- `r3/load_s3/-1`"
        in body
    )
    assert f"[TaskInstance in Airflow](<{s.ti_url}>)" in body
    assert "`file:///var/faultcat/bundles/etl_daily/r1/load_s3.json`" in body
    assert "first seen 2024-05-01T00:05:00+00:00, last seen 2024-05-01T00:09:00+00:00" in body
    assert body.splitlines()[-1] == marker(s.dedup_key)


def test_render_issue_lists_at_most_twenty_task_instances():
    tis = [f"run_{i:03d}/load_s3/{i}" for i in range(57)]
    _, body = render_issue(summary(count=57, task_instances=tis))
    listed = re.findall(r"^- `run_\d{3}/load_s3/\d+`$", body, flags=re.MULTILINE)
    assert len(listed) == 20 and listed[0] == "- `run_000/load_s3/0`"
    assert "- and 37 more" in body
    assert "**TaskInstances with this failure:** 57" in body


def test_render_issue_respects_github_limits():
    s = summary(
        title="very long finding title " * 40,
        top_evidence="x" * 200_000,
        decision="because " * 10_000,
        suggestions=[f"suggestion {i} " + "y" * 5000 for i in range(500)],
        task_instances=[f"run/{'t' * 500}/{i}" for i in range(5000)],
        count=5000,
    )
    title, body = render_issue(s)
    assert len(title) <= TITLE_MAX_CHARS and title.endswith("…")
    assert len(body) <= BODY_MAX_CHARS
    assert find_marker(body) == s.dedup_key and body.endswith(marker(s.dedup_key))


def test_evidence_with_backticks_cannot_close_the_code_block():
    evidence = "```\n# Not a heading: ```` still evidence ``` [link](http://evil.example)"
    _, body = render_issue(summary(top_evidence=evidence))
    fence = re.search(r"^(`{3,})text$", body, flags=re.MULTILINE).group(1)
    assert len(fence) == 5, "one more than the longest backtick run in the evidence"
    block = body.split(fence + "text\n", 1)[1].split("\n" + fence, 1)[0]
    assert block == evidence


def test_inline_text_is_not_raw_html_and_ids_survive_backticks():
    s = summary(title="<img src=x onerror=alert(1)> & co", task_instances=["run`1/t/-1"])
    title, body = render_issue(s)
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in body and "<img" not in body
    assert "- ``run`1/t/-1``" in body
    # The title is plain text on GitHub: it stays readable.
    assert title.endswith("<img src=x onerror=alert(1)> & co")


# ---- comments ------------------------------------------------------------------------------


def test_recurrence_comment():
    text = render_recurrence_comment(summary(count=4))
    assert text.startswith("**Seen again:** `etl_daily.load_s3` failed in run `scheduled__2024-05-01")
    assert "(CREDENTIAL, confidence 0.93)" in text
    assert "botocore.exceptions.ClientError" in text
    assert "**TaskInstances with this failure in the storm window:** 4" in text
    assert len(text) <= BODY_MAX_CHARS


def test_resolved_comment():
    text = render_resolved_comment("etl_daily", "load_s3", "r9", map_index=3, ti_url="https://af/ti")
    assert text == (
        "**Resolved:** `etl_daily.load_s3` succeeded in run `r9`, map index 3; closing.\n\n"
        "[TaskInstance in Airflow](<https://af/ti>)"
    )
    assert "TaskInstance" not in render_resolved_comment("d", "t", "r", ti_url="javascript:alert(1)")


# ---- Slack ---------------------------------------------------------------------------------


def test_slack_text():
    s = summary(count=7, title="Login <failed> & locked", top_evidence="ERROR `boto` said <no> & quit")
    text = render_slack_text(s)
    lines = text.splitlines()
    assert lines[0] == ":rotating_light: faultcat: CREDENTIAL in etl_daily.load_s3 (0.93)"
    assert lines[1] == "Login &lt;failed&gt; &amp; locked"
    assert lines[2] == "```ERROR 'boto' said &lt;no&gt; &amp; quit```"
    assert lines[3] == "Seen 7 times in the storm window."
    assert lines[4] == f"<{s.ti_url}|TaskInstance>"


def test_slack_text_is_short_and_omits_count_of_one():
    s = summary(top_evidence="z" * 50_000, title="t " * 5000)
    text = render_slack_text(s)
    assert len(text) <= SLACK_TEXT_MAX_CHARS
    assert "storm window" not in text
    assert text.endswith(f"<{s.ti_url}|TaskInstance>")


# ---- scrubbing -----------------------------------------------------------------------------


def test_secrets_never_leave_any_renderer():
    s = summary(
        title=f"Login failed with password={PASSWORD}",
        top_evidence=LEAKY_LINE,
        decision=f"not retried: key {AWS_KEY} is revoked",
        suggestions=[f"Replace {AWS_KEY}"],
        task_instances=[f"r1/t/-1?password={PASSWORD}"],
    )
    title, body = render_issue(s)
    outputs = [title, body, render_recurrence_comment(s), render_slack_text(s)]
    outputs.append(render_resolved_comment("d", f"t password={PASSWORD}", "r"))
    for text in outputs:
        assert AWS_KEY not in text and PASSWORD not in text, text
    assert "key *** rejected; retrying with password=***" in body


# ---- model ---------------------------------------------------------------------------------


def test_summary_validation():
    assert summary(root_cause=Category.NETWORK).root_cause == "NETWORK"
    with pytest.raises(ValidationError):
        summary(unknown_field=1)
    with pytest.raises(ValidationError):
        summary(ti_url="javascript:alert(1)")
    with pytest.raises(ValidationError):
        summary(confidence=1.5)


def test_escalation_core_imports_without_airflow():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'airflow' or name.startswith('airflow.'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from airflow_faultcat.core.escalation import dedup_key, marker\n"
        "print(marker(dedup_key('d', 'X', None)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!-- faultcat:dedup=fc-")
