"""DAGs the shadow-error tests check: each succeeds (or is marked success) with one postcondition
kept or broken.

VMs live on the libvirt test driver node of connection ``libvirt_it`` (a node XML the tests rewrite
to define, undefine, start or stop domains between scans); lineage goes to the stand-in Marquez
through the OpenLineage provider, selectively enabled per Dag.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.openlineage.utils.selective_enable import disable_lineage, enable_lineage
from airflow.sdk import DAG, Asset, task

from airflow_faultcat.sensors.shadow import ShadowErrorSensor

START = datetime(2025, 1, 1)
LIBVIRT = "libvirt_it"
COMMON = {"schedule": None, "start_date": START, "catchup": False, "default_args": {"retries": 0}}
# Tasks failed on purpose escalate at once instead of waiting for an approval.
NEVER_RETRY = ["faultcat:retry=never"]


def vm_dag(dag_id: str, domain: str, conn_id: str = LIBVIRT) -> DAG:
    """A provisioning Dag whose one task declares ``libvirt://<conn_id>/<domain>`` as its outlet."""
    with DAG(dag_id, **COMMON) as dag:

        @task(outlets=[Asset(f"libvirt://{conn_id}/{domain}")])
        def provision() -> str:
            print(f"defined and started {domain}")
            return domain

        provision()
    return enable_lineage(dag)


it_shadow_vm_running = vm_dag("it_shadow_vm_running", "it-running")
it_shadow_vm_absent = vm_dag("it_shadow_vm_absent", "it-absent")
it_shadow_vm_off = vm_dag("it_shadow_vm_off", "it-off")
it_shadow_libvirt_down = vm_dag("it_shadow_libvirt_down", "it-running", conn_id="libvirt_down")

# VMs named by the postconditions file from the DagRun conf ({{ params.vm_name }}).
with DAG("it_shadow_yaml", params={"vm_name": "it-running"}, **COMMON) as it_shadow_yaml:

    @task
    def provision_from_conf(params=None) -> str:
        return params["vm_name"]

    provision_from_conf()
enable_lineage(it_shadow_yaml)

# Lineage never sent: not enabled for this Dag.
with DAG("it_shadow_nolineage", **COMMON) as it_shadow_nolineage:

    @task
    def extract() -> int:
        return 1

    extract()

# Lineage of the DagRun, but not of its second task.
with DAG("it_shadow_partial_lineage", **COMMON) as it_shadow_partial_lineage:

    @task
    def extract_rows() -> int:
        return 1

    @task
    def publish_rows(rows: int) -> int:
        return rows

    publish_rows(extract_rows())
enable_lineage(it_shadow_partial_lineage)
disable_lineage(it_shadow_partial_lineage.get_task("publish_rows"))

# Fails; the test then marks the DagRun success, as a hurried operator would in the UI.
with DAG("it_shadow_mismatch", tags=NEVER_RETRY, **COMMON) as it_shadow_mismatch:

    @task
    def load() -> None:
        raise ValueError("it_shadow_mismatch: 3 rows rejected by the warehouse")

    load()

# A failed teardown does not fail the DagRun: legitimate.
with DAG("it_shadow_teardown", tags=NEVER_RETRY, **COMMON) as it_shadow_teardown:

    @task
    def create_scratch() -> str:
        return "scratch"

    @task
    def use_scratch(name: str) -> str:
        return name

    @task
    def drop_scratch(name: str) -> None:
        raise RuntimeError(f"it_shadow_teardown: could not drop {name}")

    scratch = create_scratch()
    use_scratch(scratch) >> drop_scratch(scratch).as_teardown(setups=scratch)

# A failure followed by an all_done cleanup that succeeds: the DagRun is success by its trigger rules.
with DAG("it_shadow_all_done", tags=NEVER_RETRY, **COMMON) as it_shadow_all_done:

    @task
    def fetch() -> None:
        raise ValueError("it_shadow_all_done: source returned HTTP 500")

    @task(trigger_rule="all_done")
    def cleanup() -> str:
        return "cleaned"

    fetch() >> cleanup()


def sensor_dag(dag_id: str, vms: list[str], **sensor: object) -> DAG:
    """Provision, then verify inline with ShadowErrorSensor."""
    with DAG(dag_id, tags=NEVER_RETRY, **COMMON) as dag:

        @task
        def provision() -> None:
            print(f"provisioned {vms}")

        provision() >> ShadowErrorSensor(
            task_id="verify",
            vms=vms,
            libvirt_conn_id=LIBVIRT,
            poke_interval=2,
            **sensor,
        )
    return enable_lineage(dag)


it_shadow_sensor_ok = sensor_dag(
    "it_shadow_sensor_ok", ["it-running"], lineage_tasks=["provision"], deferrable=True, timeout=120
)
it_shadow_sensor_off = sensor_dag("it_shadow_sensor_off", ["it-off", "it-absent"], deferrable=True, timeout=8)
it_shadow_sensor_soft = sensor_dag(
    "it_shadow_sensor_soft", ["it-off"], deferrable=True, timeout=8, soft_fail=True
)
it_shadow_sensor_poke = sensor_dag(
    "it_shadow_sensor_poke", ["it-running"], lineage_tasks=["provision"], deferrable=False, timeout=60
)
it_shadow_sensor_poke_off = sensor_dag(
    "it_shadow_sensor_poke_off", ["it-paused"], deferrable=False, mode="poke", timeout=6
)
