"""
### Example: a task that cannot reach the libvirt daemon

**Purpose.** Show how faultcat diagnoses a virtualization task whose hypervisor daemon is down.

**The real failure.** The task opens ``qemu:///system`` with libvirt-python while no ``libvirtd``
(or ``virtqemud``) runs, so libvirt raises ``libvirt.libvirtError: Failed to connect socket to
'/var/run/libvirt/libvirt-sock': No such file or directory``.

**Expected root cause:** ``VIRTUALIZATION``.

**Prerequisites.** ``libvirt-python`` installed in the worker's environment and **no** libvirt
daemon running (on a host with libvirtd running the task would connect and succeed). ``libvirt``
is imported inside the task, so the DAG file parses without it. The failure is handed to the
``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "VIRTUALIZATION"

#: The system-wide QEMU/KVM hypervisor of the local libvirt daemon.
LIBVIRT_URI = "qemu:///system"


@dag(
    dag_id="example_libvirt_unreachable",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_libvirt_unreachable():
    @task
    def list_build_vms() -> list[str]:
        """List the domains of the build hypervisor."""
        import libvirt

        conn = libvirt.open(LIBVIRT_URI)
        try:
            return [domain.name() for domain in conn.listAllDomains()]
        finally:
            conn.close()

    list_build_vms()


example_libvirt_unreachable()
