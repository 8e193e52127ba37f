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
        "connection-types": [
            {
                "connection-type": "faultcat_api",
                "hook-class-name": "airflow_faultcat.hooks.airflow_api.AirflowApiHook",
                "hook-name": "Faultcat: Airflow REST API",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Scheme (http or https)", "login": "Username"},
                    "placeholders": {
                        "host": "airflow-api-server.example.com",
                        "port": "8080",
                        "schema": "http",
                        "login": "faultcat",
                        "extra": '{"verify": true, "base_path": ""}',
                    },
                },
                "conn-fields": {
                    "verify": {
                        "label": "Verify TLS",
                        "schema": {"type": ["boolean", "null"], "default": True},
                        "description": "Verify the API server's TLS certificate.",
                    },
                    "base_path": {
                        "label": "Base path",
                        "schema": {"type": ["string", "null"]},
                        "description": "Path prefix when the API server is behind a proxy under a path.",
                    },
                },
            },
            {
                "connection-type": "libvirt",
                "hook-class-name": "airflow_faultcat.hooks.libvirt.LibvirtHook",
                "hook-name": "Libvirt",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "password", "port", "host"],
                    "relabeling": {},
                    "placeholders": {"extra": '{"uri": "qemu+ssh://faultcat@kvm-host-01/system"}'},
                },
                "conn-fields": {
                    "uri": {
                        "label": "libvirt URI",
                        "schema": {"type": ["string", "null"]},
                        "description": (
                            "qemu:///system, qemu+ssh://user@host/system or test:///path/node.xml; "
                            "opened read-only."
                        ),
                    },
                },
            },
            {
                "connection-type": "marquez",
                "hook-class-name": "airflow_faultcat.hooks.marquez.MarquezHook",
                "hook-name": "Faultcat: Marquez",
                "ui-field-behaviour": {
                    "hidden-fields": ["login"],
                    "relabeling": {"schema": "Scheme (http or https)", "password": "API key (optional)"},
                    "placeholders": {
                        "host": "marquez.example.com",
                        "port": "5000",
                        "extra": '{"namespace": "default"}',
                    },
                },
                "conn-fields": {
                    "namespace": {
                        "label": "OpenLineage namespace",
                        "schema": {"type": ["string", "null"]},
                        "description": "Namespace the OpenLineage provider emits into (default: its own).",
                    },
                },
            },
        ],
        "integrations": [
            {
                "integration-name": "Faultcat",
                "external-doc-url": "https://pypi.org/project/airflow-faultcat/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Faultcat",
                "python-modules": [
                    "airflow_faultcat.operators.recovery",
                    "airflow_faultcat.operators.approval",
                    "airflow_faultcat.operators.retry",
                    "airflow_faultcat.operators.escalate",
                    "airflow_faultcat.operators.shadow",
                    "airflow_faultcat.operators.canary",
                    "airflow_faultcat.operators.explore",
                    "airflow_faultcat.operators.sweep",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Faultcat",
                "python-modules": ["airflow_faultcat.sensors.recovery", "airflow_faultcat.sensors.shadow"],
            },
        ],
        "triggers": [
            {"integration-name": "Faultcat", "python-modules": ["airflow_faultcat.triggers.shadow"]},
        ],
        "asset-uris": [
            {
                "schemes": ["libvirt"],
                "handler": "airflow_faultcat.assets.libvirt.sanitize_uri",
                "factory": "airflow_faultcat.assets.libvirt.create_asset",
            }
        ],
        "hooks": [
            {
                "integration-name": "Faultcat",
                "python-modules": [
                    "airflow_faultcat.hooks.airflow_api",
                    "airflow_faultcat.hooks.state",
                    "airflow_faultcat.hooks.github_issues",
                    "airflow_faultcat.hooks.libvirt",
                    "airflow_faultcat.hooks.marquez",
                ],
            }
        ],
        "notifications": ["airflow_faultcat.notifications.recovery_dag.RecoveryDagNotifier"],
        "plugins": [
            {"name": "faultcat", "plugin-class": "airflow_faultcat.plugins.faultcat.FaultcatPlugin"},
        ],
        "config": {
            "faultcat": {
                "description": "Diagnosis and recovery settings of airflow-faultcat.",
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
                    "listener_enabled": {
                        "description": (
                            "Diagnose every failed task of every DAG through a listener, without adding "
                            "on_failure_callback to each DAG. faultcat's own DAGs are skipped."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "recovery_dag_id": {
                        "description": "The DAG the listener triggers for each failure.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "faultcat_recovery",
                        "default": "faultcat_recovery",
                    },
                    "spool_dir": {
                        "description": (
                            "Folder where a failure waits (one JSON file each) when the API server cannot "
                            "be reached. Empty means AIRFLOW_HOME/faultcat/spool."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/faultcat/spool",
                        "default": "",
                    },
                    "evidence_path": {
                        "description": (
                            "Base path or URL (ObjectStoragePath, e.g. s3://bucket/faultcat) of the evidence "
                            "bundles. Empty means AIRFLOW_HOME/faultcat/evidence."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/faultcat/evidence",
                        "default": "",
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
                    "recovery_policy": {
                        "description": (
                            "Recovery policy override: inline JSON/YAML or a path to a YAML file, shaped as "
                            "RecoveryPolicy (retry_budget, backoff_base_seconds, storm_window_seconds, "
                            "categories.<CATEGORY>.retry = auto|approval|never, allowed_handlers, ...). "
                            "Dags override it further with tags (faultcat:retry=approval) or the "
                            "faultcat_policy param. An invalid value is ignored and reported in the bundle."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": '{"retry_budget": 5, "categories": {"TIMEOUT": {"retry": "approval"}}}',
                        "default": "",
                    },
                    "redis_conn_id": {
                        "description": (
                            "Redis connection of the guardrails (idempotency, retry budgets, circuit "
                            "breaker, storm dedup). Without Redis nothing is retried automatically."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "redis_default",
                        "default": "redis_default",
                    },
                    "redis_key_prefix": {
                        "description": "Prefix of every Redis key faultcat writes (all keys expire).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "faultcat:",
                        "default": "faultcat:",
                    },
                    "github_conn_id": {
                        "description": "GitHub connection (github provider) used to escalate.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "github_default",
                        "default": "github_default",
                    },
                    "github_repository": {
                        "description": "owner/name of the repository escalation issues go to; empty: none.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "data-platform/oncall",
                        "default": "",
                    },
                    "slack_conn_id": {
                        "description": "Slack API connection (slack provider) used to escalate.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "slack_api_default",
                        "default": "slack_api_default",
                    },
                    "slack_channel": {
                        "description": "Channel escalations are posted to; empty: none.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "#data-oncall",
                        "default": "",
                    },
                    "shadow_postconditions": {
                        "description": (
                            "YAML file of postconditions for Dags you cannot edit: a list of "
                            "{dag_id: <RE2 pattern>, vms: [{name: <Jinja template>, conn_id}], "
                            "lineage: bool}."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/faultcat/postconditions.yaml",
                        "default": "",
                    },
                    "shadow_scan_schedule": {
                        "description": "Schedule of faultcat_shadow_scan (cron, preset, or none: manual).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "*/5 * * * *",
                        "default": "*/15 * * * *",
                    },
                    "shadow_lineage": {
                        "description": (
                            "Whether successful DagRuns must have lineage in Marquez: auto (when the "
                            "OpenLineage provider is enabled), true or false."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "false",
                        "default": "auto",
                    },
                    "history_retention_days": {
                        "description": "How long the failure history (fingerprints, flakes) is kept, days.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "14",
                        "default": "30",
                    },
                    "flaky_rate": {
                        "description": (
                            "A fingerprint is flaky when at least this share of its recent runs failed "
                            "and then passed on retry."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "0.3",
                        "default": "0.2",
                    },
                    "flaky_min_runs": {
                        "description": "Runs of a fingerprint's task recorded before it can be called flaky.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "5",
                        "default": "2",
                    },
                    "healthy_after_runs": {
                        "description": "Clean runs in a row that make a flaky or broken fingerprint healthy.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "5",
                        "default": "3",
                    },
                    "explore_enabled": {
                        "description": (
                            "Whether faultcat_recovery runs read-only probes that test each finding "
                            "against the live environment before diagnosing."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                    "explore_queue": {
                        "description": (
                            "Executor queue of the explore task (probes look from where they run); "
                            "empty: the default queue."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "kvm_workers",
                        "default": "",
                    },
                    "explore_pool": {
                        "description": "Pool of the explore task; empty: default_pool.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "faultcat_probes",
                        "default": "",
                    },
                    "llm_enabled": {
                        "description": (
                            "Whether faultcat_recovery lets an OpenAI-compatible model explore a failure "
                            "with the read-only probes; its answer is used only when it passes the "
                            "judge (schema, cited evidence, at least one probe), else the deterministic "
                            "diagnosis stands. Only scrubbed text is sent."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "llm_conn_id": {
                        "description": (
                            "Connection of the OpenAI-compatible API: host is the base URL including /v1, "
                            "password the API key."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "llm_default",
                        "default": "llm_default",
                    },
                    "llm_model": {
                        "description": "Model name the LLM explorer asks for; required when llm_enabled.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "gpt-4o-mini",
                        "default": "",
                    },
                    "llm_max_steps": {
                        "description": "How many model calls one LLM exploration may make.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "4",
                        "default": "6",
                    },
                    "llm_timeout_seconds": {
                        "description": "Seconds one LLM exploration may take (model calls and probes).",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "60",
                        "default": "30",
                    },
                    "sweep_schedule": {
                        "description": (
                            "Schedule of faultcat_sweep, which hands failed TaskInstances without a "
                            "recovery run (a SIGKILLed task runs no callback) to the recovery DAG "
                            "(cron, preset, or none: manual)."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "*/10 * * * *",
                        "default": "*/5 * * * *",
                    },
                    "sweep_dag_pattern": {
                        "description": (
                            "A regex of the dag_ids faultcat_sweep hands over (faultcat's own Dags "
                            "never); default: every Dag."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "etl_.*|infra_.*",
                        "default": ".*",
                    },
                    "canary_schedule": {
                        "description": "Schedule of faultcat_canary (cron, preset, or none: manual).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "*/10 * * * *",
                        "default": "*/5 * * * *",
                    },
                    "docker_conn_id": {
                        "description": (
                            "The docker connection (host: the engine's API URL) whose containers the "
                            "canary watches and explore probes; empty: containers are not looked at."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "docker_default",
                        "default": "",
                    },
                    "canary_timeout_buffer_seconds": {
                        "description": (
                            "Seconds past execution_timeout (TaskInstance) or dagrun_timeout (DagRun) "
                            "before the canary calls it stuck."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "600",
                        "default": "300",
                    },
                    "canary_heartbeat_stale_seconds": {
                        "description": (
                            "A scheduler, triggerer or dag-processor heartbeat older than this (seconds) "
                            "is stale."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "60",
                        "default": "120",
                    },
                    "canary_queued_seconds": {
                        "description": (
                            "Seconds a TaskInstance or DagRun may stay queued before the canary counts it."
                        ),
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "120",
                        "default": "300",
                    },
                    "canary_restart_count": {
                        "description": "Restarts of one container that make a restart loop.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "5",
                        "default": "3",
                    },
                    "marquez_conn_id": {
                        "description": "The marquez connection lineage is checked against.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "marquez_default",
                        "default": "marquez_default",
                    },
                },
            },
        },
    }
