"""A failure whose cause is only in its log, recovered as if each step ran on a fresh worker.

``it_recovery_fresh_host`` is the recovery DAG with one difference: after ``collect`` and after
``publish`` a task deletes the failure's evidence folder, as a pod per task (KubernetesExecutor)
or another Celery worker would not have it. Every later step must still read the log (through the
REST API) and record its outcome in the note and the bundle (through Redis).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.dags.recovery import build_recovery_dag
from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

FRESH_HOST_RECOVERY = "it_recovery_fresh_host"


@dag(
    dag_id="it_log_only",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={
        "retries": 0,
        "on_failure_callback": RecoveryDagNotifier(recovery_dag_id=FRESH_HOST_RECOVERY),
    },
)
def it_log_only():
    @task
    def load() -> None:
        # The cause is logged; the exception that fails the task says nothing about it.
        logging.getLogger("etl.load").error(
            'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  password authentication failed for user "etl"'
        )
        raise RuntimeError("the load step failed")

    load()


it_log_only()

fresh_host_recovery = build_recovery_dag(FRESH_HOST_RECOVERY)

with fresh_host_recovery:

    @task
    def lose_worker_disk(collected: dict) -> str:
        """The next steps run where this evidence folder is not."""
        folder = collected["evidence_folder"].removeprefix("file://")
        shutil.rmtree(folder, ignore_errors=True)
        return folder

    collect = fresh_host_recovery.get_task("collect")
    after_collect = lose_worker_disk.override(task_id="lose_disk_after_collect")(collect.output)
    for downstream in ("explore", "diagnose"):
        if downstream in fresh_host_recovery.task_dict:
            after_collect >> fresh_host_recovery.get_task(downstream)
    after_publish = lose_worker_disk.override(task_id="lose_disk_after_publish")(collect.output)
    fresh_host_recovery.get_task("publish") >> after_publish >> fresh_host_recovery.get_task("approve")


@dag(
    dag_id="it_log_only_default",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
)
def it_log_only_default():
    @task
    def load() -> None:
        logging.getLogger("etl.load").error(
            'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  password authentication failed for user "etl"'
        )
        raise RuntimeError("the load step failed")

    load()


it_log_only_default()
