"""Tests for :class:`airflow_faultcat.hooks.libvirt.LibvirtHook` against libvirt's test driver.

No mocks of libvirt: ``test:///<node.xml>`` is libvirt's own in-process driver, fed with
``tests/data/libvirt/testnode.xml`` (one domain per state).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt")

from airflow_faultcat.hooks.libvirt import (  # noqa: E402
    SNAPSHOT_QUERY,
    LibvirtHook,
    LibvirtUnavailable,
    redact_uri,
    state_name,
)

NODE = Path(__file__).resolve().parents[2] / "data" / "libvirt" / "testnode.xml"
NODE_URI = f"test://{NODE}"
NO_SOCKET = "/nonexistent/libvirt-sock"

EXPECTED = {"vm-running": "running", "vm-paused": "paused", "vm-shutoff": "shutoff", "vm-crashed": "crashed"}


@pytest.fixture
def hook():
    h = LibvirtHook(uri=NODE_URI)
    yield h
    h.close()


class Recorder:
    """Forwards every attribute to ``target`` and records the methods called through it.

    Only counts; libvirt does the work. The domains a ``getAll*`` call returns are wrapped too,
    so that per-domain calls show up as well.
    """

    def __init__(self, target, calls: list[str], prefix: str = "") -> None:
        self._target, self._calls, self._prefix = target, calls, prefix

    def __getattr__(self, attr):
        value = getattr(self._target, attr)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            self._calls.append(self._prefix + attr)
            result = value(*args, **kwargs)
            if attr.startswith("getAll"):
                result = [(Recorder(dom, self._calls, "domain."), stats) for dom, stats in result]
            return result

        return call


def test_snapshot_has_every_domain_with_its_state(hook):
    before = datetime.now(timezone.utc)
    snap = hook.snapshot()

    assert {name: d.state for name, d in snap.domains.items()} == EXPECTED
    assert snap.domains["vm-paused"].uuid == "6f1c3a52-0d4e-4b8a-9c57-2a0e7d1b9a02"
    assert all(d.name == name and d.reason is not None for name, d in snap.domains.items())
    assert snap.query == SNAPSHOT_QUERY == "virConnectGetAllDomainStats(VIR_DOMAIN_STATS_STATE)"
    assert snap.uri == NODE_URI
    assert before <= snap.taken_at <= datetime.now(timezone.utc)
    assert snap.taken_at.tzinfo is not None


def test_snapshot_is_one_bulk_call(hook, monkeypatch):
    calls: list[str] = []
    conn = Recorder(hook.get_conn(), calls)
    monkeypatch.setattr(hook, "get_conn", lambda: conn)

    snap = hook.snapshot()

    assert len(snap.domains) == 4
    host_calls = [c for c in calls if not c.startswith("domain.")]
    assert host_calls == ["getAllDomainStats"]
    assert not [c for c in calls if c.startswith(("list", "lookup", "domain.list", "domain.lookup"))]
    # Per domain only the attributes the returned object carries: no state(), info(), isActive().
    assert {c for c in calls if c.startswith("domain.")} == {"domain.name", "domain.UUIDString"}


def test_connection_is_read_only(hook):
    conn = hook.get_conn()
    assert conn.isAlive()
    assert hook.get_conn() is conn
    xml = "<domain type='test'><name>intruder</name><memory>1024</memory><os><type>hvm</type></os></domain>"
    with pytest.raises(libvirt.libvirtError, match="read only access prevents virDomainDefineXML") as err:
        conn.defineXML(xml)
    assert err.value.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED
    assert "intruder" not in hook.snapshot().domains


def test_uri_from_the_connection_extra(monkeypatch):
    conn = {"conn_type": "libvirt", "extra": {"uri": NODE_URI}}
    monkeypatch.setenv("AIRFLOW_CONN_LIBVIRT_TEST", json.dumps(conn))
    hook = LibvirtHook("libvirt_test")
    try:
        assert hook.uri == NODE_URI
        assert set(hook.snapshot().domains) == set(EXPECTED)
        assert hook.test_connection() == (True, f"libvirt {NODE_URI}: 4 domains")
    finally:
        hook.close()


def test_uri_from_the_connection_host(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LIBVIRT_TEST", json.dumps({"conn_type": "libvirt", "host": NODE_URI}))
    assert LibvirtHook("libvirt_test").uri == NODE_URI


def test_uri_argument_overrides_the_connection(monkeypatch):
    conn = {"conn_type": "libvirt", "extra": {"uri": "qemu+unix:///system?socket=" + NO_SOCKET}}
    monkeypatch.setenv("AIRFLOW_CONN_LIBVIRT_TEST", json.dumps(conn))
    hook = LibvirtHook("libvirt_test", uri="test:///default")
    try:
        snap = hook.snapshot()
    finally:
        hook.close()
    assert snap.uri == "test:///default"
    assert list(snap.domains) == ["test"]
    assert snap.domains["test"].state == "running"


def test_connection_without_uri(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LIBVIRT_TEST", json.dumps({"conn_type": "libvirt"}))
    hook = LibvirtHook("libvirt_test")
    with pytest.raises(LibvirtUnavailable, match="has no libvirt URI"):
        hook.get_conn()
    ok, message = hook.test_connection()
    assert not ok and "has no libvirt URI" in message


def test_unreachable_daemon_names_the_socket():
    hook = LibvirtHook(uri=f"qemu+unix:///system?socket={NO_SOCKET}")
    with pytest.raises(LibvirtUnavailable, match=f"Failed to connect socket to '{NO_SOCKET}'") as err:
        hook.snapshot()
    assert isinstance(err.value.__cause__, libvirt.libvirtError)

    ok, message = hook.test_connection()
    assert ok is False
    assert NO_SOCKET in message and "No such file or directory" in message


def test_unknown_scheme_is_unavailable():
    # libvirt hands a scheme no driver claims to the remote driver, which finds no daemon.
    hook = LibvirtHook(uri="bogus:///nothing")
    with pytest.raises(LibvirtUnavailable, match="^libvirt bogus:///nothing: "):
        hook.get_conn()
    assert hook.test_connection()[0] is False


def test_missing_node_file_is_unavailable():
    ok, message = LibvirtHook(uri="test:///nonexistent/node.xml").test_connection()
    assert not ok and "/nonexistent/node.xml" in message


def test_without_libvirt_python(monkeypatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)
    with pytest.raises(LibvirtUnavailable, match=r"pip install airflow-faultcat\[libvirt\]"):
        LibvirtHook(uri="test:///default").get_conn()


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("qemu+ssh://user:secret@host/system", "qemu+ssh://user@host/system"),
        (
            "qemu+tcp://user:p%40ss:w@host:16509/system?no_verify=1",
            "qemu+tcp://user@host:16509/system?no_verify=1",
        ),
        ("esx://:secret@vcenter/?no_verify=1", "esx://vcenter/?no_verify=1"),
        ("qemu+ssh://user@host/system", "qemu+ssh://user@host/system"),
        ("qemu:///system", "qemu:///system"),
        ("test:///abs/path/node.xml", "test:///abs/path/node.xml"),
        ("qemu+unix:///system?socket=/run/a@b", "qemu+unix:///system?socket=/run/a@b"),
    ],
)
def test_redact_uri_drops_only_the_password(uri, shown):
    assert redact_uri(uri) == shown


@pytest.mark.parametrize(
    ("code", "name"),
    [(0, "nostate"), (1, "running"), (2, "blocked"), (3, "paused"), (4, "shutdown")]
    + [(5, "shutoff"), (6, "crashed"), (7, "pmsuspended"), (8, "unknown"), (None, "unknown")],
)
def test_state_names(code, name):
    assert state_name(code) == name


def test_default_test_node():
    hook = LibvirtHook(uri="test:///default")
    try:
        ok, message = hook.test_connection()
        snap = hook.snapshot()
    finally:
        hook.close()
    assert (ok, message) == (True, "libvirt test:///default: 1 domains")
    assert snap.domains["test"].state == "running"
    assert snap.domains["test"].uuid
