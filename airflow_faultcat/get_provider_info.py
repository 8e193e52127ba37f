"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_faultcat import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata: name, versions, plugins and the ``[faultcat]`` config section.

    Airflow reads this without importing the provider's hooks or operators.
    """
    return {
        "package-name": "airflow-faultcat",
        "name": "Faultcat",
        "description": (
            "Diagnoses failed tasks from their logs with an extensible pattern library, recovers "
            "them safely and catches shadow errors (successful DagRuns whose postconditions failed)."
        ),
        "versions": [__version__],
        "plugins": [
            {"name": "faultcat", "plugin-class": "airflow_faultcat.plugins.faultcat.FaultcatPlugin"},
        ],
        "config": {
            "faultcat": {
                "description": "Diagnosis engine settings of airflow-faultcat.",
                "options": {
                    "pattern_paths": {
                        "description": (
                            "Extra pattern files or folders (YAML, see docs/patterns.md), separated by "
                            "commas or colons. They add patterns or replace a shipped one by pattern_id. "
                            "A broken file is reported with the file, the pattern_id and the problem."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/faultcat-patterns,/etc/faultcat/site.yaml",
                        "default": "",
                    },
                    "min_score": {
                        "description": (
                            "Below this ranking score (0-1.2) the diagnosis is UNKNOWN with a "
                            "diagnostics_gap rather than a weak guess."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "0.2",
                        "default": "0.15",
                    },
                    "evidence_per_pattern": {
                        "description": (
                            "How many first (and as many last) matching log lines each finding keeps as "
                            "evidence; the total count is always reported."
                        ),
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "5",
                        "default": "3",
                    },
                },
            },
        },
    }
