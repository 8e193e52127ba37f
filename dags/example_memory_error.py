"""
### Example: a task that runs out of memory

**Purpose.** Show how faultcat diagnoses a task that cannot allocate the memory it asks for.

**The real failure.** The task lowers its own address-space limit (the *soft* ``RLIMIT_AS``, with
``resource.setrlimit``) to its current size plus 256 MiB, then allocates a 1 GiB ``bytearray``:
the allocation fails and Python raises ``MemoryError``. The limit only constrains this task's
process, nothing else on the host runs short of memory, and the soft limit is restored in a
``finally`` so that the failure callback, which runs afterwards in the same process, has memory.

**Expected root cause:** ``RESOURCE_EXHAUSTION``.

**Prerequisites.** Linux (``RLIMIT_AS``, ``/proc/self/status``). The failure is handed to the
``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "RESOURCE_EXHAUSTION"

MIB = 1024 * 1024
#: Address space the task may still grow by once its limit is lowered.
HEADROOM_BYTES = 256 * MIB
#: What the task tries to allocate: four times the headroom.
ALLOCATION_BYTES = 1024 * MIB


def current_address_space() -> int:
    """This process's virtual memory size in bytes (``VmSize``), which ``RLIMIT_AS`` limits."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmSize not found in /proc/self/status")


@dag(
    dag_id="example_memory_error",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_memory_error():
    @task
    def build_feature_matrix() -> int:
        """Build an in-memory matrix far larger than the memory the task is allowed."""
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current_address_space() + HEADROOM_BYTES
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        print(f"Limiting the address space to {limit // MIB} MiB; allocating {ALLOCATION_BYTES // MIB} MiB")
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            matrix = bytearray(ALLOCATION_BYTES)
            return len(matrix)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    build_feature_matrix()


example_memory_error()
