"""The ``[faultcat]`` configuration section: the only module that reads it.

Values come from Airflow's configuration (``airflow.cfg`` or ``AIRFLOW__FAULTCAT__*`` environment
variables). Outside an Airflow installation (the ``faultcat`` CLI on a laptop) the environment
variables alone are read, so the CLI never pays for importing Airflow.
"""

from __future__ import annotations

import os
import sys
from typing import Any

SECTION = "faultcat"

#: Defaults, also declared (with descriptions) in ``get_provider_info()``.
DEFAULTS: dict[str, str] = {
    "pattern_paths": "",
    "min_score": "0.15",
    "evidence_per_pattern": "3",
    "listener_enabled": "False",
    "recovery_dag_id": "faultcat_recovery",
    "spool_dir": "",
    "evidence_path": "",
    "recovery_policy": "",
    "redis_conn_id": "redis_default",
    "redis_key_prefix": "faultcat:",
    "github_conn_id": "github_default",
    "github_repository": "",
    "slack_conn_id": "slack_api_default",
    "slack_channel": "",
    "shadow_postconditions": "",
    "shadow_scan_schedule": "*/15 * * * *",
    "shadow_lineage": "auto",
    "marquez_conn_id": "marquez_default",
    "history_retention_days": "30",
    "flaky_rate": "0.2",
    "flaky_min_runs": "2",
    "healthy_after_runs": "3",
    "canary_schedule": "*/5 * * * *",
    "sweep_schedule": "*/5 * * * *",
    "sweep_dag_pattern": ".*",
    "docker_conn_id": "",
    "canary_timeout_buffer_seconds": "300",
    "canary_heartbeat_stale_seconds": "120",
    "canary_queued_seconds": "300",
    "canary_restart_count": "3",
    "explore_enabled": "True",
    "explore_queue": "",
    "explore_pool": "",
    "llm_enabled": "False",
    "llm_conn_id": "llm_default",
    "llm_model": "",
    "llm_max_steps": "6",
    "llm_timeout_seconds": "30",
}


def _raw(key: str) -> str:
    env = os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}")
    if env is not None:
        return env
    if "airflow" in sys.modules or os.environ.get("AIRFLOW_HOME"):
        try:
            from airflow.configuration import conf
        except ImportError:  # pragma: no cover - the CLI without Airflow
            return DEFAULTS[key]
        return conf.get(SECTION, key, fallback=DEFAULTS[key])
    return DEFAULTS[key]


def pattern_paths() -> list[str]:
    """User pattern files or folders, from ``[faultcat] pattern_paths`` (comma or ``:`` separated)."""
    raw = _raw("pattern_paths")
    return [p.strip() for p in raw.replace(",", ":").split(":") if p.strip()]


def get_float(key: str) -> float:
    """A float option of the ``[faultcat]`` section.

    :raises ValueError: naming the option when its value is not a number.
    """
    raw = _raw(key)
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"[{SECTION}] {key} must be a number, got {raw!r}") from None


def get_int(key: str) -> int:
    """An integer option of the ``[faultcat]`` section.

    :raises ValueError: naming the option when its value is not an integer.
    """
    raw = _raw(key)
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"[{SECTION}] {key} must be an integer, got {raw!r}") from None


def airflow_home() -> str:
    """``$AIRFLOW_HOME``, as Airflow resolves it (``~/airflow`` when unset)."""
    return os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow")


def get_bool(key: str) -> bool:
    """A boolean option of the ``[faultcat]`` section (true/false, 1/0, yes/no, on/off).

    :raises ValueError: naming the option when its value is not a boolean.
    """
    raw = _raw(key).strip().lower()
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"[{SECTION}] {key} must be true or false, got {raw!r}")


def listener_enabled() -> bool:
    """Whether the fleet-wide failure listener is on (``[faultcat] listener_enabled``)."""
    return get_bool("listener_enabled")


def recovery_dag_id() -> str:
    """The DAG the listener triggers (``[faultcat] recovery_dag_id``)."""
    return _raw("recovery_dag_id").strip() or DEFAULTS["recovery_dag_id"]


def spool_dir() -> str:
    """Where failures wait when the API is down (``[faultcat] spool_dir``)."""
    return _raw("spool_dir").strip() or os.path.join(airflow_home(), "faultcat", "spool")


def evidence_path() -> str:
    """Base of the evidence bundles, a local path or an object-storage URL (``[faultcat] evidence_path``)."""
    return _raw("evidence_path").strip() or "file://" + os.path.join(airflow_home(), "faultcat", "evidence")


def get_str(key: str) -> str:
    """A string option of the ``[faultcat]`` section, stripped (its default when empty)."""
    return _raw(key).strip() or DEFAULTS[key]


def schedule(key: str) -> str | None:
    """A schedule option (cron or preset); ``none`` means only when triggered (``None``)."""
    value = get_str(key)
    return None if value.lower() == "none" else value


def redis_key_prefix() -> str:
    """Prefix of faultcat's Redis keys (``[faultcat] redis_key_prefix``)."""
    return _raw("redis_key_prefix") or DEFAULTS["redis_key_prefix"]


def recovery_policy() -> tuple[dict | None, str | None]:
    """The ``[faultcat] recovery_policy`` override: inline JSON/YAML or a path to a YAML file.

    :return: (the parsed document or ``None``, a problem line or ``None``). A broken value is
        reported rather than raised: recoveries go on with the defaults.
    """

    raw = _raw("recovery_policy").strip()
    if not raw:
        return None, None
    from airflow_faultcat.core.safe_yaml import UnsafeYamlError, load_yaml_file, load_yaml_text

    try:
        if (
            not raw.lstrip().startswith(("{", "["))
            and "\n" not in raw
            and os.path.exists(os.path.expanduser(raw))
        ):
            doc = load_yaml_file(os.path.expanduser(raw))
        else:
            doc = load_yaml_text(raw, what="value")
    except UnsafeYamlError as exc:
        return None, f"[{SECTION}] recovery_policy is not valid JSON/YAML: {exc}"
    if doc is not None and not isinstance(doc, dict):
        return None, f"[{SECTION}] recovery_policy must be a mapping, got {type(doc).__name__}"
    return doc, None


def shadow_lineage_expected() -> bool:
    """Whether successful DagRuns must have lineage in Marquez (``[faultcat] shadow_lineage``).

    ``auto`` (the default) means: when the OpenLineage provider is installed and not disabled.

    :raises ValueError: naming the option when its value is not auto, true or false.
    """
    raw = _raw("shadow_lineage").strip().lower() or "auto"
    if raw != "auto":
        return get_bool("shadow_lineage")
    try:
        from airflow.providers.openlineage import conf as ol_conf
    except ImportError:
        return False
    return not ol_conf.is_disabled()


def flake_settings() -> Any:
    """The flake thresholds (``[faultcat] flaky_rate``, ``flaky_min_runs``, ``healthy_after_runs``).

    :raises ValueError: naming the option when a value is not a number or out of range.
    """
    from pydantic import ValidationError

    from airflow_faultcat.core.fingerprint import FlakeSettings

    try:
        return FlakeSettings(
            flaky_rate=get_float("flaky_rate"),
            min_runs=get_int("flaky_min_runs"),
            healthy_after=get_int("healthy_after_runs"),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"[{SECTION}] flake settings: {err['loc'][0]}: {err['msg']}") from None


def history_retention_seconds() -> int:
    """How long the failure history is kept (``[faultcat] history_retention_days``), in seconds."""
    days = get_float("history_retention_days")
    if days <= 0:
        raise ValueError(f"[{SECTION}] history_retention_days must be positive, got {days}")
    return int(days * 86400)
