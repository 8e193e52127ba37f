"""airflow-faultcat: diagnose failed Airflow tasks, recover them safely, catch shadow errors."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
