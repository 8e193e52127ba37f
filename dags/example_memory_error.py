"""
### Example: a task that runs out of memory

**Purpose.** Show how faultcat diagnoses a task that asks for more memory than its worker has.

**The real failure.** The task sizes a feature matrix at more than the worker's memory and swap
together (``MemTotal`` + ``SwapTotal`` from ``/proc/meminfo``, plus 1 GiB), logs
``Allocating <n> GiB for the feature matrix``, and allocates it as a ``bytearray``: Python raises
``MemoryError``. So that the request fails at once and nothing else on the host runs short of
memory, whatever the kernel's overcommit setting, the task first lowers its own address-space limit
(the *soft* ``RLIMIT_AS``) to its current size plus 256 MiB; the limit is restored in a ``finally``
so that the failure callback, which runs afterwards in the same process, has memory. The request
stays larger than the worker, so faultcat's explore step sees that it would not fit now either.

**Expected root cause:** ``RESOURCE_EXHAUSTION``.

**Prerequisites.** Linux (``RLIMIT_AS``, ``/proc/meminfo``, ``/proc/self/status``). The failure is
handed to the ``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server
is reachable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "RESOURCE_EXHAUSTION"

MIB = 1024 * 1024
GIB = 1024 * MIB
#: Address space the task may still grow by once its limit is lowered.
HEADROOM_BYTES = 256 * MIB


def _proc_kib(path: str, *fields: str) -> dict[str, int]:
    """Fields of a ``/proc`` file whose lines read ``Name:   123 kB``, in bytes."""
    found = {}
    with open(path, encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in fields:
                found[name] = int(value.split()[0]) * 1024
    missing = set(fields) - set(found)
    if missing:
        raise RuntimeError(f"{', '.join(sorted(missing))} not found in {path}")
    return found


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
        """Build an in-memory matrix larger than the worker's memory and swap."""
        import resource

        host = _proc_kib("/proc/meminfo", "MemTotal", "SwapTotal")
        size = host["MemTotal"] + host["SwapTotal"] + GIB
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _proc_kib("/proc/self/status", "VmSize")["VmSize"] + HEADROOM_BYTES
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        print(
            f"Allocating {size / GIB:.1f} GiB for the feature matrix "
            f"(worker: {host['MemTotal'] / GIB:.1f} GiB memory, {host['SwapTotal'] / GIB:.1f} GiB swap)"
        )
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            matrix = bytearray(size)
            return len(matrix)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    build_feature_matrix()


example_memory_error()
