"""libvirt, read-only: which domains exist and what state each is in.

The shadow-error checks ask "is the VM the green provisioning Dag made really there and running?".
This hook answers with one :class:`~airflow_faultcat.core.models.DomainSnapshot` per scan, read in
one bulk call (``virConnectGetAllDomainStats``), so a scan costs one round trip however many
domains the host has. The connection is always opened read-only: a check must never be able to
change a VM.

libvirt-python is an optional extra: ``pip install airflow-faultcat[libvirt]``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk import BaseHook

from airflow_faultcat.core.models import DomainObservation, DomainSnapshot, DomainState
from airflow_faultcat.exceptions import FaultcatError

#: What :meth:`LibvirtHook.snapshot` records as the call that read the domains.
SNAPSHOT_QUERY = "virConnectGetAllDomainStats(VIR_DOMAIN_STATS_STATE)"

#: ``virDomainState`` codes by name.
_STATES: dict[int, DomainState] = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}


class LibvirtUnavailable(FaultcatError):
    """libvirt could not be reached, answered with an error, or libvirt-python is not installed."""


def state_name(code: int | None) -> DomainState:
    """The name of a ``virDomainState`` code, ``unknown`` for codes this libvirt-python predates.

    :param code: the ``state.state`` value of a domain's stats record.
    """
    return _STATES.get(code, "unknown") if code is not None else "unknown"


def redact_uri(uri: str) -> str:
    """``uri`` without the password of its userinfo: ``qemu+ssh://u:pw@h/s`` -> ``qemu+ssh://u@h/s``.

    The URI is otherwise left byte for byte as given: ``urllib.parse`` would rewrite
    ``test:///path`` (an unknown scheme with an empty host) as ``test:/path``.

    :param uri: a libvirt URI.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return uri
    userinfo, _, hostport = authority.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + '@' if user else ''}{hostport}{rest[end:]}"


def _libvirt() -> Any:
    """Import libvirt-python and silence its default error handler.

    :raises LibvirtUnavailable: when libvirt-python is not installed.
    """
    try:
        import libvirt
    except ImportError as exc:
        raise LibvirtUnavailable(
            f"libvirt-python is not installed ({exc}): pip install airflow-faultcat[libvirt]"
        ) from exc
    # libvirt's default handler prints every error to stderr; ours all reach the caller as
    # LibvirtUnavailable instead. The handler is process-wide, so registering it again is harmless.
    libvirt.registerErrorHandler(_ignore_error, None)
    return libvirt


def _ignore_error(_ctx: Any, _error: Any) -> None:
    return None


class LibvirtHook(BaseHook):
    """Reads the domains of one libvirt host, over a read-only connection.

    The connection (type ``libvirt``) gives the libvirt URI in its extra field ``uri``, e.g.
    ``qemu:///system``, ``qemu+ssh://user@host/system`` or ``test:///abs/path/node.xml``; when the
    extra has no ``uri``, the connection's host field is used as the whole URI.

    :param libvirt_conn_id: the connection id (default ``libvirt_default``).
    :param uri: a libvirt URI to use instead of the connection's.

    .. seealso:: https://libvirt.org/uri.html for the URI forms.
    """

    conn_name_attr = "libvirt_conn_id"
    default_conn_name = "libvirt_default"
    conn_type = "libvirt"
    hook_name = "Libvirt"

    def __init__(self, libvirt_conn_id: str = default_conn_name, *, uri: str | None = None) -> None:
        super().__init__()
        self.libvirt_conn_id = libvirt_conn_id
        self._uri = uri
        self._conn: Any = None

    @property
    def uri(self) -> str:
        """The libvirt URI: ``uri=`` if given, else the connection's extra ``uri``, else its host.

        :raises LibvirtUnavailable: when neither is set (libvirt would otherwise guess a hypervisor).
        """
        if self._uri is None:
            conn = self.get_connection(self.libvirt_conn_id)
            uri = conn.extra_dejson.get("uri") or conn.host
            if not uri:
                raise LibvirtUnavailable(
                    f"connection {self.libvirt_conn_id!r} has no libvirt URI (extra 'uri' or host)"
                )
            self._uri = uri
        return self._uri

    def get_conn(self) -> Any:
        """The read-only ``libvirt.virConnect``, opened on first use.

        :raises LibvirtUnavailable: when libvirt cannot be reached, with libvirt's own message.
        """
        if self._conn is None:
            libvirt = _libvirt()
            uri = self.uri
            try:
                self._conn = libvirt.openReadOnly(uri)
            except libvirt.libvirtError as exc:
                raise LibvirtUnavailable(f"libvirt {redact_uri(uri)}: {exc}") from exc
        return self._conn

    def close(self) -> None:
        """Close the connection, if open."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        import libvirt

        try:
            conn.close()
        except libvirt.libvirtError as exc:
            # Closing a connection that already died must not fail the caller's cleanup.
            self.log.debug("closing libvirt %s: %s", redact_uri(self.uri), exc)

    def snapshot(self) -> DomainSnapshot:
        """Every domain (running or not) and its state, read in one bulk call.

        Names and UUIDs come from the returned domain objects, which carry them: reading them
        costs no further call to libvirt.

        :raises LibvirtUnavailable: when libvirt cannot be reached or answers with an error.
        """
        conn = self.get_conn()
        libvirt = _libvirt()
        try:
            records = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
            domains = {}
            for dom, stats in records:
                name = dom.name()
                domains[name] = DomainObservation(
                    name=name,
                    uuid=dom.UUIDString(),
                    state=state_name(stats.get("state.state")),
                    reason=stats.get("state.reason"),
                )
        except libvirt.libvirtError as exc:
            raise LibvirtUnavailable(f"libvirt {redact_uri(self.uri)}: {exc}") from exc
        return DomainSnapshot(
            uri=redact_uri(self.uri),
            taken_at=datetime.now(timezone.utc),
            query=SNAPSHOT_QUERY,
            domains=domains,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Open the connection and count its domains; never raises."""
        try:
            snap = self.snapshot()
        except Exception as exc:
            return False, str(exc)
        return True, f"libvirt {snap.uri}: {len(snap.domains)} domains"


def snapshot_of(libvirt_conn_id: str) -> DomainSnapshot:
    """One :meth:`LibvirtHook.snapshot` of a connection, opened and closed around it.

    :raises LibvirtUnavailable: when libvirt cannot be reached or answers with an error.
    """
    hook = LibvirtHook(libvirt_conn_id)
    try:
        return hook.snapshot()
    finally:
        hook.close()
