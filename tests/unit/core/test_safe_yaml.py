"""User-written YAML (postconditions, a recovery policy) is bounded in size and expansion."""

from __future__ import annotations

import os

import pytest

from airflow_faultcat.core.safe_yaml import MAX_YAML_BYTES, UnsafeYamlError, load_yaml_file, load_yaml_text
from airflow_faultcat.core.shadow import PostconditionFileError, load_postcondition_rules

LAUGHS = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def test_plain_yaml_loads():
    assert load_yaml_text("- dag_id: etl\n  vms: []\n") == [{"dag_id": "etl", "vms": []}]


def test_anchors_and_aliases_are_refused_before_they_expand():
    with pytest.raises(UnsafeYamlError, match="anchors and aliases"):
        load_yaml_text(LAUGHS)


def test_a_huge_or_special_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_YAML_BYTES)
    with pytest.raises(UnsafeYamlError, match="at most"):
        load_yaml_file(big)
    fifo = tmp_path / "rules.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeYamlError, match="not a regular file"):
        load_yaml_file(fifo)  # refused without opening it: no blocking read
    with pytest.raises(UnsafeYamlError, match="not a regular file"):
        load_yaml_file(tmp_path / "missing.yaml")


def test_deep_nesting_and_broken_yaml_are_clear_errors():
    with pytest.raises(UnsafeYamlError):
        load_yaml_text("[" * 100_000)
    with pytest.raises(UnsafeYamlError, match="document"):
        load_yaml_text("a: [1, 2")


def test_a_postconditions_file_with_aliases_names_the_file(tmp_path):
    path = tmp_path / "postconditions.yaml"
    path.write_text(LAUGHS)
    with pytest.raises(PostconditionFileError, match="postconditions.yaml.*anchors"):
        load_postcondition_rules(path)


def test_a_recovery_policy_with_aliases_is_a_config_error(monkeypatch):
    from airflow_faultcat import conf

    monkeypatch.setenv("AIRFLOW__FAULTCAT__RECOVERY_POLICY", LAUGHS)
    doc, error = conf.recovery_policy()
    assert doc is None
    assert "recovery_policy" in error and "anchors and aliases" in error
