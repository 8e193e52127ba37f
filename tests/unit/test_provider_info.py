from __future__ import annotations

from importlib.metadata import entry_points

from airflow_faultcat import __version__
from airflow_faultcat.get_provider_info import get_provider_info


def test_provider_info_declares_the_config_section():
    info = get_provider_info()
    assert info["package-name"] == "airflow-faultcat"
    assert info["versions"] == [__version__]
    options = info["config"]["faultcat"]["options"]
    assert {"pattern_paths", "min_score", "evidence_per_pattern"} <= options.keys()
    for option in options.values():
        assert option["description"] and option["version_added"] and "default" in option


def test_entry_points_are_installed():
    provider = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.dist.name == "airflow-faultcat"
    ]
    assert [ep.value for ep in provider] == ["airflow_faultcat.get_provider_info:get_provider_info"]
    assert provider[0].load()()["package-name"] == "airflow-faultcat"
    plugin = entry_points(group="airflow.plugins", name="faultcat")
    assert [ep.load().name for ep in plugin] == ["faultcat"]
    scripts = entry_points(group="console_scripts", name="faultcat")
    assert [ep.value for ep in scripts] == ["airflow_faultcat.cli:main"]


def test_config_values_are_read_from_the_environment(monkeypatch):
    from airflow_faultcat import conf

    monkeypatch.setenv("AIRFLOW__FAULTCAT__PATTERN_PATHS", "/a.yaml, /b:/c")
    assert conf.pattern_paths() == ["/a.yaml", "/b", "/c"]
    monkeypatch.setenv("AIRFLOW__FAULTCAT__MIN_SCORE", "high")
    try:
        conf.get_float("min_score")
    except ValueError as exc:
        assert "[faultcat] min_score must be a number" in str(exc)
    else:
        raise AssertionError("a non-number must be rejected")


def test_airflow_sees_the_provider_and_its_config_section(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    airflow = Path(sys.executable).with_name("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("AIRFLOW__FAULTCAT__MIN_SCORE", None)
    result = subprocess.run(
        [str(airflow), "config", "get-value", "faultcat", "min_score"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0.15"


def test_declared_modules_and_connection_types_import():
    import importlib

    info = get_provider_info()
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
        assert set(conn["conn-fields"]) <= {"verify", "base_path", "uri", "namespace"}
    for kind in ("hooks", "operators", "sensors"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
