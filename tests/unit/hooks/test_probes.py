"""The read-only probes against real local things: Redis up and stopped, open and closed loopback
ports, a resolvable and an ``.invalid`` name, a healthy and a full file system, a listening and a
missing unix socket, the libvirt test driver. Each shows its three outcomes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from airflow_faultcat.core.probes import ProbeSpec
from airflow_faultcat.core.probes.targets import extract_targets, valid_host
from airflow_faultcat.hooks.probes import run_probe, run_probes

NODE = Path(__file__).resolve().parents[2] / "data" / "libvirt" / "testnode.xml"


def _probe(kind: str, target: str, timeout: float = 2.0):
    return run_probe(ProbeSpec(kind=kind, target=target), timeout)


def test_dns_resolves_localhost_not_an_invalid_name():
    ok = _probe("dns", "localhost")
    assert (
        ok.status == "ok" and ok.observed["resolved"] and ok.call == "socket.getaddrinfo('localhost', None)"
    )
    bad = _probe("dns", "no-such-host.invalid")
    assert bad.status == "failed" and bad.observed["resolved"] is False
    assert _probe("dns", "-bad-.host").status == "could_not_run"


def test_tcp_open_closed_and_unresolvable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        ok = _probe("tcp", f"127.0.0.1:{port}")
    assert ok.status == "ok" and ok.observed == {"open": True, "peer": "127.0.0.1"}
    closed = _probe("tcp", f"127.0.0.1:{port}")
    assert closed.status == "failed" and closed.observed["reason"] == "ECONNREFUSED"
    assert closed.call == f"socket.create_connection(('127.0.0.1', {port}), timeout=2)"
    gap = _probe("tcp", "no-such-host.invalid:5432")
    assert gap.status == "could_not_run" and "does not resolve" in gap.output


def test_disk_healthy_full_and_unreadable(tmp_path):
    ok = _probe("disk", str(tmp_path / "not-yet" / "out.csv"))
    assert ok.status == "ok" and ok.observed["checked"] == str(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with pytest.raises(OSError), open(full / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        result = _probe("disk", str(full / "rows.parquet"))
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert result.status == "failed" and result.observed["free_bytes"] < 64 * 2**20
    assert _probe("disk", "relative/path").status == "could_not_run"


def test_unix_socket_listening_and_missing(tmp_path):
    path = tmp_path / "svc.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        assert _probe("unix_socket", str(path)).status == "ok"
    os.unlink(path)
    missing = _probe("unix_socket", str(path))
    assert missing.status == "failed" and missing.observed == {"exists": False}


def test_process_present_and_absent():
    # A process of a known name (this test's own may be retitled, e.g. by pytest-xdist).
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        try:
            assert _probe("process", "sleep").status == "ok"
        finally:
            sleeper.kill()
    assert _probe("process", "no-such-daemon").status == "failed"
    assert _probe("process", "x; rm -rf /").status == "could_not_run"


def test_redis_up_stopped_and_unknown_connection(redis_conn, monkeypatch):
    ok = _probe("redis", "redis_default")
    assert ok.status == "ok" and ok.output == "PONG"
    redis_conn.stop()
    try:
        down = _probe("redis", "redis_default")
    finally:
        redis_conn.start()
    assert down.status == "failed" and down.observed == {"ping": False}
    assert _probe("redis", "no_such_conn").status == "could_not_run"


def test_libvirt_running_missing_and_unreachable(monkeypatch):
    pytest.importorskip("libvirt")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIBVIRT_PROBE", json.dumps({"conn_type": "libvirt", "extra": {"uri": f"test://{NODE}"}})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIBVIRT_GONE",
        json.dumps({"conn_type": "libvirt", "extra": {"uri": "test:///nonexistent.xml"}}),
    )
    assert _probe("libvirt_domain", "libvirt_probe/vm-running").status == "ok"
    shut = _probe("libvirt_domain", "libvirt_probe/vm-shutoff")
    assert shut.status == "failed" and shut.observed["state"] == "shutoff"
    missing = _probe("libvirt_domain", "libvirt_probe/vm-nope")
    assert missing.status == "failed" and missing.observed["exists"] is False
    assert _probe("libvirt_domain", "libvirt_gone/vm-running").observed == {"reachable": False}
    assert _probe("libvirt_domain", "no_such_conn/vm").status == "could_not_run"


def test_a_probe_that_hangs_is_cut_and_the_total_ceiling_holds():
    import time

    # A listener that never accepts: once its backlog is full, the kernel drops new SYNs and
    # connect() waits.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        specs = [ProbeSpec(kind="tcp", target=f"127.0.0.1:{port}"), ProbeSpec(kind="dns", target="localhost")]
        started = time.monotonic()
        results = run_probes(specs, per_probe=0.4, total=0.45)
        spent = time.monotonic() - started
        for filler in fillers:
            filler.close()
    assert results[0].status == "failed" and results[0].observed["reason"] == "timeout"
    assert results[1].status == "could_not_run" and "ceiling" in results[1].output
    assert spent < 1.0


def test_log_text_is_data_never_a_command(tmp_path):
    marker = tmp_path / "pwned"
    hostile = [
        f"ConnectionRefusedError: db.example.com:5432; touch {marker}",
        f"No space left on device: '/data/$(touch {marker})/x'",
        f"Name or service not known: 'evil`touch {marker}`.example.com'",
    ]
    targets = extract_targets(hostile)
    specs = [ProbeSpec(kind="tcp", target=f"{h}:{p}") for h, p in targets.endpoints]
    specs += [ProbeSpec(kind="dns", target=h) for h in targets.hosts]
    specs += [ProbeSpec(kind="disk", target=p) for p in targets.paths]
    specs += [
        ProbeSpec(kind="dns", target=f"$(touch {marker})"),
        ProbeSpec(kind="process", target=f"`touch {marker}`"),
    ]
    results = run_probes(specs, per_probe=0.5, total=5)
    assert not marker.exists()
    assert all(valid_host(h) for h in targets.hosts)
    assert results[-1].status == results[-2].status == "could_not_run"


def _set_conn(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_sql_connection_answers_refuses_and_unknown_types(monkeypatch):
    pytest.importorskip("airflow.providers.postgres")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5432)):
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    _set_conn(
        monkeypatch,
        "pg_up",
        conn_type="postgres",
        host="127.0.0.1",
        port=5432,
        login="postgres",
        schema="postgres",
    )
    _set_conn(
        monkeypatch,
        "pg_down",
        conn_type="postgres",
        host="127.0.0.1",
        port=1,
        login="postgres",
        schema="postgres",
    )
    _set_conn(monkeypatch, "kvm", conn_type="libvirt", extra={"uri": "qemu:///system"})
    up = _probe("connection", "pg_up")
    assert up.status == "ok" and up.observed == {"answered": True, "row": [1]}
    assert up.call == "PostgresHook('pg_up').get_first('SELECT 1')"
    down = _probe("connection", "pg_down")
    assert down.status == "failed" and "Connection refused" in down.output
    gap = _probe("connection", "kvm")
    assert gap.status == "could_not_run" and "no read-only check for connection type 'libvirt'" in gap.output


def test_http_connection_health_ok_error_and_down(monkeypatch):
    pytest.importorskip("airflow.providers.http")
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        _set_conn(
            monkeypatch,
            "api_ok",
            conn_type="http",
            host="127.0.0.1",
            port=port,
            extra={"health_endpoint": "health"},
        )
        _set_conn(monkeypatch, "api_503", conn_type="http", host="127.0.0.1", port=port)
        ok = _probe("connection", "api_ok")
        assert ok.status == "ok" and ok.observed == {"answered": True, "status": 200}
        bad = _probe("connection", "api_503")
        assert bad.status == "failed" and bad.output == "HTTP 503"
    finally:
        server.shutdown()
    down = _probe("connection", "api_ok")
    assert down.status == "failed" and down.observed == {"answered": False}


def test_connection_ids_come_from_airflow_log_lines():
    targets = extract_targets(
        [
            "[2026-01-01T00:00:00Z] INFO - Using connection ID 'warehouse_pg' for task execution.",
            "conn_id=orders_api",
        ]
    )
    assert targets.connections == ["warehouse_pg", "orders_api"]


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    from tests.podman import PodmanService, PodmanUnavailable

    try:
        service = PodmanService(tmp_path_factory.mktemp("podman-probe")).start()
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))
    try:
        service.run("probe-up", "sleep", "300")
        service.run("probe-exited", "sh", "-c", "exit 3")
        service.wait_state("probe-exited", "exited")
        yield service
    finally:
        service.stop()


def test_container_running_exited_missing_and_unconfigured(podman, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKER_PROBE", json.dumps({"conn_type": "docker", "host": podman.base_url})
    )
    monkeypatch.setenv("AIRFLOW__FAULTCAT__DOCKER_CONN_ID", "docker_probe")
    up = _probe("container", "probe-up", 10)
    assert up.status == "ok" and up.observed["state"] == "running"
    exited = _probe("container", "docker_probe/probe-exited", 10)
    assert (
        exited.status == "failed"
        and exited.observed["state"] == "exited"
        and exited.observed["exit_code"] == 3
    )
    assert _probe("container", "no-such-box", 10).observed == {"reachable": True, "exists": False}
    # A name from a log is data: the whole name must match, and anything but a name is refused.
    assert _probe("container", "probe", 10).observed == {"reachable": True, "exists": False}
    assert _probe("container", "probe-.*").status == "could_not_run"
    assert _probe("container", "x; rm -rf /").status == "could_not_run"
    monkeypatch.setenv("AIRFLOW__FAULTCAT__DOCKER_CONN_ID", "")
    gap = _probe("container", "probe-up", 10)
    assert gap.status == "could_not_run" and "docker_conn_id" in gap.output


def test_disk_probe_of_the_full_device_fails_other_devices_are_a_gap(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    # /dev/full refuses every write, yet the devtmpfs holding it reports free space.
    full = _probe("disk", "/dev/full")
    assert full.status == "failed" and full.observed == {"checked": "/dev/full", "device": "full"}
    assert full.call == "os.stat('/dev/full')" and "every write to it fails with ENOSPC" in full.output
    # Known by its device numbers, not its name.
    (tmp_path / "out.csv").symlink_to("/dev/full")
    alias = _probe("disk", str(tmp_path / "out.csv"))
    assert alias.status == "failed" and alias.observed["device"] == "full"
    # Any other device: the free space of the file system holding it says nothing of it.
    null = _probe("disk", "/dev/null")
    assert null.status == "could_not_run" and "is a device" in null.output


def test_path_exists_missing_and_refused(tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n")
    ok = _probe("path", str(data))
    assert ok.status == "ok" and ok.observed == {"exists": True, "type": "file", "readable": True}
    assert ok.call == f"os.stat({str(data)!r})"
    folder = _probe("path", str(tmp_path))
    assert folder.status == "ok" and folder.observed["type"] == "directory"
    assert _probe("path", "/dev/null").observed["type"] == "char_device"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "svc.sock"))
        assert _probe("path", str(tmp_path / "svc.sock")).observed["type"] == "socket"

    missing = _probe("path", str(tmp_path / "not-yet" / "deeper" / "out.csv"))
    assert missing.status == "failed"
    assert missing.observed == {"exists": False, "nearest_existing": str(tmp_path)}
    assert (
        missing.output
        == f"{tmp_path}/not-yet/deeper/out.csv does not exist (nearest existing folder: {tmp_path})"
    )
    # Under a file: ENOTDIR, and the nearest existing folder is the file's.
    under_file = _probe("path", str(data / "x"))
    assert under_file.status == "failed" and under_file.observed["nearest_existing"] == str(tmp_path)
    assert _probe("path", "relative/out.csv").status == "could_not_run"


def test_path_from_a_log_is_data_never_a_command(tmp_path):
    marker = tmp_path / "pwned"
    hostile = _probe("path", f"{tmp_path}/x; touch {marker}")
    assert hostile.status == "failed" and hostile.observed["nearest_existing"] == str(tmp_path)
    assert _probe("path", "/tmp/x; rm -rf /").status == "failed"
    assert _probe("path", f"/tmp/$(touch {marker})").status == "failed"
    assert not marker.exists()


def test_memory_of_this_worker():
    worker = _probe("memory", "worker")
    assert worker.status in ("ok", "failed")
    assert worker.observed["available_bytes"] > 0 and worker.observed["total_bytes"] > 0
    assert worker.observed["available_bytes"] <= worker.observed["total_bytes"]
    assert set(worker.observed) <= {
        "available_bytes",
        "total_bytes",
        "cgroup_limit_bytes",
        "cgroup_current_bytes",
        "cgroup_oom_kills",
    }
    assert "MiB available; cgroup limit" in worker.output
    assert worker.call == "psutil.virtual_memory() + /sys/fs/cgroup memory.max, memory.current, memory.events"
    assert _probe("memory", "other").status == "could_not_run"
    # With the size of an allocation that failed: would that much fit on this worker now?
    small = _probe("memory", "worker:1048576")
    assert small.status == "ok" and small.observed["requested_bytes"] == 1048576
    assert small.output.startswith("1 MiB asked, fits now")
    huge = _probe("memory", f"worker:{worker.observed['total_bytes'] * 2}")
    assert huge.status == "failed" and "does not fit now" in huge.output
    assert _probe("memory", "worker:lots").status == "could_not_run"


def test_an_unknown_kind_is_a_gap_not_an_error():
    spec = ProbeSpec.model_construct(kind="telepathy", target="x")
    result = run_probe(spec)
    assert result.status == "could_not_run" and "no probe of kind 'telepathy'" in result.output


def test_http_status_of_an_unauthenticated_get():
    import http.server
    import threading

    seen: list[dict[str, str]] = []

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append({k.lower(): v for k, v in self.headers.items()})
            if self.path == "/ok":
                self.send_response(200)
            elif self.path == "/private":
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="x", error_description="secret-hint"')
            else:
                self.send_response(404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    try:
        ok = _probe("http", f"{base}/ok")
        private = _probe("http", f"{base}/private")
        # Refused before any request: another scheme, a query, a fragment, credentials.
        refused = [
            _probe("http", url)
            for url in (
                f"ftp://127.0.0.1:{port}/ok",
                f"{base}/ok?q=1",
                f"{base}/ok#top",
                f"http://user:pw@127.0.0.1:{port}/ok",
                "http://-bad-.host/ok",
                "http://127.0.0.1:99999/ok",
            )
        ]
    finally:
        server.shutdown()
        server.server_close()
    assert ok.status == "ok" and ok.observed == {"status": 200} and ok.output == "HTTP 200"
    assert ok.call == f"GET {base}/ok (no credentials, no redirects)"
    assert private.status == "failed" and private.observed == {"status": 401}
    assert private.output == 'HTTP 401, WWW-Authenticate: Bearer realm="x"'
    assert [r.status for r in refused] == ["could_not_run"] * len(refused)
    assert len(seen) == 2 and all("authorization" not in headers for headers in seen)

    down = _probe("http", f"{base}/ok")
    assert down.status == "could_not_run" and down.output.startswith(f"no answer from {base}/ok")


def test_timeout_and_duration_parsing():
    from airflow_faultcat.hooks.probes import _auth_challenge, _timeout_seconds, _try_duration

    assert _timeout_seconds({"__type": "TimeDelta", "days": 0, "seconds": 3, "microseconds": 500000}) == 3.5
    assert _timeout_seconds({"__type": "TimeDelta", "days": 1, "seconds": 0, "microseconds": 0}) == 86400
    assert _timeout_seconds(90) == 90.0 and _timeout_seconds(2.5) == 2.5
    assert [_timeout_seconds(v) for v in (None, True, "3", 0, {"seconds": "x"})] == [None] * 5
    assert _try_duration({"duration": 3.2}) == 3.2
    assert (
        _try_duration(
            {"duration": None, "start_date": "2025-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:03.5Z"}
        )
        == 3.5
    )
    assert _try_duration({"duration": None, "start_date": "2025-01-01T00:00:00Z", "end_date": None}) is None
    assert _auth_challenge('Basic realm="api", charset="UTF-8"') == 'Basic realm="api"'
    assert _auth_challenge("Negotiate") == "Negotiate"


@pytest.fixture
def airflow_api(monkeypatch):
    """The REST API stand-in with one DagRun whose first try ran its whole 3 s timeout and
    whose second stopped early; ``faultcat_api_default`` points at it."""
    from tests.standins.airflow_api import AirflowApiStandin, generate

    data = generate(1, n_dags=1, vm_dags=1, vm_names=["vm-a"], noise=False)
    run = data.dag_runs[0]
    run["conf"] = {"vm_name": "vm-a", "api_token": "hunter2-conf-value"}
    three_seconds = {"__type": "TimeDelta", "days": 0, "seconds": 3, "microseconds": 0}
    for task in data.tasks["provision_vm_00"]:
        if task["task_id"] == "create_vm":
            task["execution_timeout"] = three_seconds
    current = next(ti for ti in data.task_instances if ti["task_id"] == "create_vm")
    first = dict(current, try_number=1, state="up_for_retry", duration=3.2)
    current.update(try_number=2, max_tries=1, state="failed", duration=0.4)
    data.task_instance_history.append(first)
    with AirflowApiStandin(data) as standin:
        conn = {
            "conn_type": "faultcat_api",
            "host": "127.0.0.1",
            "port": standin.port,
            "schema": "http",
            "login": "admin",
            "password": "admin",
        }
        monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_DEFAULT", json.dumps(conn))
        yield standin, run["dag_run_id"]


def _answers_follow_the_contract(standin) -> None:
    from tests.standins.airflow_api import (
        AIRFLOW_CONTRACT,
        SHARED_CONTRACTS,
        TRY_FIELDS,
        _spec,
        operation_of,
        response_errors,
    )

    if not (SHARED_CONTRACTS / AIRFLOW_CONTRACT).exists():
        return
    schema = _spec(AIRFLOW_CONTRACT)["components"]["schemas"]["TaskInstanceHistoryResponse"]
    assert set(TRY_FIELDS) == set(schema["properties"])
    for request in standin.requests:
        if request.status < 300:
            assert response_errors(operation_of(request.method, request.path), request.response) == []


def test_dag_run_conf_key_present_absent_and_unknown_run(airflow_api):
    standin, run_id = airflow_api
    present = _probe("dag_run_conf", f"provision_vm_00/{run_id}/vm_name", 5)
    assert present.status == "ok"
    assert present.observed == {"key": "vm_name", "present": True, "conf_keys": ["api_token", "vm_name"]}
    assert present.call == f"GET /api/v2/dags/provision_vm_00/dagRuns/{run_id} (conf keys)"
    absent = _probe("dag_run_conf", f"provision_vm_00/{run_id}/disk_gb", 5)
    assert absent.status == "failed" and absent.observed["present"] is False
    # Key names only: a conf value may be a secret.
    assert all("hunter2" not in json.dumps([r.observed, r.output]) for r in (present, absent))
    unknown = _probe("dag_run_conf", "provision_vm_00/no-such-run/vm_name", 5)
    assert unknown.status == "could_not_run" and "HTTP 404" in unknown.output
    assert _probe("dag_run_conf", f"provision_vm_00/{run_id}/").status == "could_not_run"
    assert [r.status for r in standin.rejected] == [404]
    _answers_follow_the_contract(standin)


def test_task_timeout_whole_timeout_early_stop_and_gaps(airflow_api):
    standin, run_id = airflow_api
    timed_out = _probe("task_timeout", f"provision_vm_00/{run_id}/create_vm/-1/1", 5)
    assert timed_out.status == "failed"
    assert timed_out.observed == {"duration_seconds": 3.2, "execution_timeout_seconds": 3.0}
    assert timed_out.output == "try 1 ran 3.2 s of its 3 s execution_timeout"
    assert timed_out.call == (
        "GET .../taskInstances/create_vm/tries + GET /api/v2/dags/provision_vm_00/tasks"
    )
    early = _probe("task_timeout", f"provision_vm_00/{run_id}/create_vm/-1/2", 5)
    assert early.status == "ok" and early.observed["duration_seconds"] == 0.4
    # Not among the tries, nor the current one.
    absent = _probe("task_timeout", f"provision_vm_00/{run_id}/create_vm/-1/3", 5)
    assert absent.status == "could_not_run" and "no try 3" in absent.output
    no_limit = _probe("task_timeout", f"provision_vm_00/{run_id}/smoke_test/-1/1", 5)
    assert no_limit.status == "could_not_run" and "no execution_timeout" in no_limit.output
    assert _probe("task_timeout", f"provision_vm_00/{run_id}/create_vm/-1/x").status == "could_not_run"
    assert standin.rejected == []
    _answers_follow_the_contract(standin)


def test_api_probes_with_the_api_unreachable(monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    conn = {"conn_type": "faultcat_api", "host": "127.0.0.1", "port": port, "login": "a", "password": "b"}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_DEFAULT", json.dumps(conn))
    conf = _probe("dag_run_conf", "etl/manual__1/key")
    timeout = _probe("task_timeout", "etl/manual__1/load/-1/1")
    assert conf.status == timeout.status == "could_not_run"
    assert "cannot reach the Airflow API" in conf.output and "cannot reach" in timeout.output
