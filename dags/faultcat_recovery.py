"""faultcat_recovery: diagnoses a failed TaskInstance (see airflow_faultcat.dags.recovery)."""

from airflow_faultcat.dags.recovery import build_recovery_dag

dag = build_recovery_dag()
