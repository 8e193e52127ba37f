"""Benchmark: fingerprint stability on generated variants of 20 failure kinds.

Every variant of a kind differs in what changes between runs of the same failure: numbers
(ports, counts, durations, exit codes), paths, host names and addresses, ids (UUIDs, hex
digests, pod suffixes, run ids), timestamps. All 20 kinds fail the same task, so only the cause
tells them apart. Two ways of fingerprinting are measured:

- ``template``: the exception type and the message reduced to a template (no pattern): the path
  taken when no pattern of the library explains the failure;
- ``diagnosed``: the full analyzer on the message (the shipped pattern library), then the
  fingerprint from the top finding's pattern (or the template when nothing matched).

A kind is stable when all its variants share one fingerprint; kinds are separated when no two
share one. The last line is ``fingerprints_for_20_kinds: N`` (template path; the target is 20).

Usage: ``python bench/fingerprint.py [--variants 50] [--seed 7]``
"""

from __future__ import annotations

import argparse
import io
import random
import string
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_faultcat.core.fingerprint import fingerprint  # noqa: E402


def _host(rng: random.Random) -> str:
    return rng.choice(
        [
            f"db-{rng.randint(1, 99)}.{rng.choice(['prod', 'stage', 'eu1'])}.example.com",
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"pg-{rng.randint(1, 9)}.internal.example.net",
        ]
    )


def _path(rng: random.Random) -> str:
    day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return rng.choice(
        [
            f"/data/{rng.choice(['in', 'raw', 'staging'])}/{day}/part-{rng.randint(0, 9999):04d}.parquet",
            f"/opt/airflow/tmp/{uuid.UUID(int=rng.getrandbits(128))}.csv",
            f"/mnt/{rng.choice(['nfs', 'ceph'])}/exports/batch_{rng.randint(1, 500)}/rows.json",
        ]
    )


def _suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n - 1)) + str(
        rng.randint(0, 9)
    )


def _ts(rng: random.Random) -> str:
    return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


#: (kind, exception type, message factory).
KINDS = [
    (
        "pg_refused",
        "psycopg2.OperationalError",
        lambda r: (
            f'connection to server at "{_host(r)}", port {r.choice([5432, 6432, 15432])} failed: Connection refused'
        ),
    ),
    (
        "pg_auth",
        "psycopg2.OperationalError",
        lambda r: (
            f'connection to server at "{_host(r)}", port 5432 failed: FATAL:  password authentication failed for user "etl_{r.randint(1, 9)}"'
        ),
    ),
    ("dns", "socket.gaierror", lambda r: f"[Errno -2] Name or service not known: '{_host(r)}'"),
    (
        "timeout",
        "airflow.exceptions.AirflowTaskTimeout",
        lambda r: f"Timeout, PID: {r.randint(100, 99999)} after {r.randint(60, 7200)} seconds",
    ),
    ("disk_full", "OSError", lambda r: f"[Errno 28] No space left on device: '{_path(r)}'"),
    ("missing_file", "FileNotFoundError", lambda r: f"[Errno 2] No such file or directory: '{_path(r)}'"),
    (
        "oom",
        "MemoryError",
        lambda r: (
            f"Unable to allocate {r.randint(1, 64)}.{r.randint(0, 99)} GiB for an array with shape ({r.randint(10**5, 10**8)}, {r.randint(2, 512)}) and data type float64"
        ),
    ),
    (
        "http_503",
        "requests.exceptions.HTTPError",
        lambda r: (
            f"503 Server Error: Service Unavailable for url: https://{_host(r)}/api/v{r.randint(1, 3)}/items?page={r.randint(1, 900)}"
        ),
    ),
    (
        "http_401",
        "requests.exceptions.HTTPError",
        lambda r: (
            f"401 Client Error: Unauthorized for url: https://api.example.com/v1/orders/{uuid.UUID(int=r.getrandbits(128))}"
        ),
    ),
    (
        "s3_denied",
        "botocore.exceptions.ClientError",
        lambda r: (
            f"An error occurred (AccessDenied) when calling the PutObject operation: Access Denied (request id {_suffix(r, 16).upper()})"
        ),
    ),
    (
        "k8s_oomkilled",
        "airflow.exceptions.AirflowException",
        lambda r: (
            f"Pod etl-{uuid.UUID(int=r.getrandbits(128)).hex[:8]}-{_suffix(r)} returned a failure: OOMKilled (exit code 137) at {_ts(r)}"
        ),
    ),
    (
        "libvirt_sock",
        "libvirt.libvirtError",
        lambda r: (
            f"Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory (host {_host(r)})"
        ),
    ),
    (
        "vm_exists",
        "libvirt.libvirtError",
        lambda r: (
            f"operation failed: domain 'vm-{r.randint(1, 999)}-{_suffix(r)}' already exists with uuid {uuid.UUID(int=r.getrandbits(128))}"
        ),
    ),
    (
        "key_error",
        "KeyError",
        lambda r: (
            f"'customer_id' (row {r.randint(1, 10**6)} of batch {uuid.UUID(int=r.getrandbits(128)).hex})"
        ),
    ),
    (
        "schema_drift",
        "ValueError",
        lambda r: f"column count mismatch in {_path(r)}: expected {r.randint(5, 40)} got {r.randint(41, 80)}",
    ),
    (
        "redis_down",
        "redis.exceptions.ConnectionError",
        lambda r: f"Error 111 connecting to {_host(r)}:{r.choice([6379, 6380])}. Connection refused.",
    ),
    (
        "ssh_hostkey",
        "paramiko.ssh_exception.SSHException",
        lambda r: f"Server '[{_host(r)}]:{r.randint(2200, 2299)}' not found in known_hosts",
    ),
    (
        "lock_timeout",
        "sqlalchemy.exc.OperationalError",
        lambda r: (
            f'(psycopg2.errors.LockNotAvailable) canceling statement due to lock timeout; relation "orders_{r.randint(2020, 2026)}_{r.randint(1, 12):02d}" pid {r.randint(100, 99999)}'
        ),
    ),
    (
        "git_fetch",
        "subprocess.CalledProcessError",
        lambda r: (
            f"Command '['git', 'fetch', 'origin', '{uuid.UUID(int=r.getrandbits(128)).hex[:12]}']' returned non-zero exit status {r.choice([128, 1])}."
        ),
    ),
    (
        "spark_lost",
        "pyspark.errors.PySparkRuntimeError",
        lambda r: (
            f"Lost executor {r.randint(1, 400)} on {_host(r)}: Container killed by YARN for exceeding memory limits. {r.randint(5, 40)}.{r.randint(0, 9)} GB of {r.randint(41, 60)} GB physical memory used"
        ),
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    variants = [(kind, etype, make(rng)) for kind, etype, make in KINDS for _ in range(args.variants)]

    from airflow_faultcat.core.diagnose import Analyzer
    from airflow_faultcat.core.models import FailureContext
    from airflow_faultcat.core.patterns.loader import load_library

    analyzer = Analyzer(load_library([]))
    results: dict[str, dict[str, set[str]]] = {"template": defaultdict(set), "diagnosed": defaultdict(set)}
    spent = {"template": 0.0, "diagnosed": 0.0}
    for kind, etype, message in variants:
        started = time.perf_counter()
        fp = fingerprint("etl_nightly", "load", exception_type=etype, message=message)
        spent["template"] += time.perf_counter() - started
        results["template"][kind].add(fp.id)

        started = time.perf_counter()
        context = FailureContext(
            dag_id="etl_nightly", task_id="load", exception_type=etype, exception_message=message
        )
        diagnosis = analyzer.diagnose(io.BytesIO(f"ERROR - {etype}: {message}\n".encode()), context=context)
        top = (
            diagnosis.findings[0] if diagnosis.findings and diagnosis.root_cause.value != "UNKNOWN" else None
        )
        fp = fingerprint(
            "etl_nightly",
            "load",
            exception_type=etype,
            pattern_id=top.pattern_id if top else None,
            message=message,
        )
        spent["diagnosed"] += time.perf_counter() - started
        results["diagnosed"][kind].add(fp.id)

    print(f"{len(variants)} variants of {len(KINDS)} failure kinds, all in one task (seed {args.seed})")
    print(f"{'path':<10} {'fingerprints':>12} {'unstable kinds':>15} {'shared':>7} {'ms/variant':>11}")
    totals = {}
    for path, by_kind in results.items():
        all_ids = [f for ids in by_kind.values() for f in ids]
        unstable = [k for k, ids in by_kind.items() if len(ids) > 1]
        shared = len(all_ids) - len(set(all_ids))
        totals[path] = len(set(all_ids))
        print(
            f"{path:<10} {len(set(all_ids)):>12} {len(unstable):>15} {shared:>7} "
            f"{spent[path] * 1000 / len(variants):>11.3f}"
        )
        for kind in unstable:
            print(f"  unstable {path} {kind}: {len(by_kind[kind])} fingerprints")
        if shared:
            owners = defaultdict(list)
            for kind, ids in by_kind.items():
                for fid in ids:
                    owners[fid].append(kind)
            for fid, kinds in owners.items():
                if len(kinds) > 1:
                    print(f"  shared {path} {fid}: {', '.join(kinds)}")
    print(f"fingerprints_for_20_kinds: {totals['template']}")
    return 0 if totals["template"] == len(KINDS) else 1


if __name__ == "__main__":
    sys.exit(main())
