"""faultcat_canary: Airflow's own health every few minutes (see airflow_faultcat.dags.canary)."""

from airflow_faultcat.dags.canary import build_canary_dag

dag = build_canary_dag()
