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


def test_disk_probe_of_a_device_is_a_gap_not_a_verdict():
    # /dev/full refuses every write, yet the devtmpfs holding it reports free space.
    result = _probe("disk", "/dev/full")
    assert result.status == "could_not_run" and "is a device" in result.output
