"""faultcat_sweep: failed TaskInstances without a recovery run (see airflow_faultcat.dags.sweep)."""

from airflow_faultcat.dags.sweep import build_sweep_dag

dag = build_sweep_dag()
