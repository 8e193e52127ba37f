"""faultcat_shadow_scan: shadow errors in successful DagRuns (see airflow_faultcat.dags.shadow)."""

from airflow_faultcat.dags.shadow import build_shadow_scan_dag

dag = build_shadow_scan_dag()
