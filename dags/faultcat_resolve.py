"""The ``faultcat_resolve`` DAG: closes a task's escalations once it succeeds (see the provider's docs)."""

from airflow_faultcat.dags.recovery import build_resolve_dag

dag = build_resolve_dag()
