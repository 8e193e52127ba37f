"""The recovery policy from ``[faultcat] recovery_policy`` and handlers from entry points."""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_faultcat import conf
from airflow_faultcat.core.handlers import load_handlers
from airflow_faultcat.core.policy import resolve_policy

HANDLERS = Path(__file__).resolve().parents[1] / "integration" / "handlers"


def test_inline_json_policy(monkeypatch):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__RECOVERY_POLICY", '{"retry_budget": 7}')
    doc, problem = conf.recovery_policy()
    assert doc == {"retry_budget": 7} and problem is None
    assert resolve_policy(doc).retry_budget == 7


def test_policy_file(monkeypatch, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("categories:\n  TIMEOUT:\n    retry: never\n")
    monkeypatch.setenv("AIRFLOW__FAULTCAT__RECOVERY_POLICY", str(path))
    doc, problem = conf.recovery_policy()
    assert problem is None
    assert resolve_policy(doc).categories["TIMEOUT"].retry == "never"


def test_broken_policy_is_reported_and_the_defaults_stay(monkeypatch):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__RECOVERY_POLICY", "{retry_budget: [")
    doc, problem = conf.recovery_policy()
    assert doc is None and "recovery_policy is not valid JSON/YAML" in problem
    monkeypatch.setenv("AIRFLOW__FAULTCAT__RECOVERY_POLICY", "- a list")
    doc, problem = conf.recovery_policy()
    assert doc is None and "must be a mapping" in problem


def test_handlers_come_from_the_entry_point_group(monkeypatch):
    monkeypatch.syspath_prepend(str(HANDLERS))
    handlers, problems = load_handlers()
    assert "it_marker" in handlers and problems == []
    assert handlers["it_marker"].name == "it_marker"


def test_a_broken_handler_is_reported_not_raised(monkeypatch, tmp_path):
    info = tmp_path / "broken_handlers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-handlers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[airflow_faultcat.recovery_handlers]\nbroken = no_such_module_xyz:Handler\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("no_such_module_xyz", None)
    handlers, problems = load_handlers()
    assert "broken" not in handlers
    assert any("recovery handler 'broken'" in p and "ModuleNotFoundError" in p for p in problems)
