"""The ``[faultcat]`` configuration section: the only module that reads it.

Values come from Airflow's configuration (``airflow.cfg`` or ``AIRFLOW__FAULTCAT__*`` environment
variables). Outside an Airflow installation (the ``faultcat`` CLI on a laptop) the environment
variables alone are read, so the CLI never pays for importing Airflow.
"""

from __future__ import annotations

import os
import sys

SECTION = "faultcat"

#: Defaults, also declared (with descriptions) in ``get_provider_info()``.
DEFAULTS: dict[str, str] = {
    "pattern_paths": "",
    "min_score": "0.15",
    "evidence_per_pattern": "3",
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
