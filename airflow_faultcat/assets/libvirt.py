"""The ``libvirt://<conn_id>/<domain>`` asset: "this task creates this VM, and it runs".

Registered with Airflow through the provider's ``asset-uris``: a task that lists
``Asset("libvirt://libvirt_default/web-01")`` in its ``outlets`` declares a postcondition that
faultcat's shadow-error checks verify against the libvirt host of connection ``libvirt_default``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, quote

from airflow_faultcat.core.shadow import LIBVIRT_SCHEME


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``libvirt://`` asset URI (Airflow calls this when an Asset is created).

    :param uri: the split URI, already normalised by Airflow (no trailing slash, no fragment).
    :raises ValueError: when the connection id or the domain name is missing, or the path has more
        than one segment.
    """
    if not uri.netloc:
        raise ValueError(f"{LIBVIRT_SCHEME} asset URI must name a connection: libvirt://<conn_id>/<domain>")
    domain = uri.path.strip("/")
    if not domain or "/" in domain:
        raise ValueError(
            f"{LIBVIRT_SCHEME} asset URI must name one domain: libvirt://<conn_id>/<domain>, "
            f"got path {uri.path!r}"
        )
    return uri


def create_asset(
    *, domain: str, conn_id: str = "libvirt_default", extra: dict[str, Any] | None = None
) -> Any:
    """An outlet Asset for a VM that must exist and run after the task succeeds.

    :param domain: the libvirt domain name.
    :param conn_id: the ``libvirt`` connection of the host.
    :param extra: the Asset's extra.
    """
    from airflow.sdk import Asset

    uri = f"{LIBVIRT_SCHEME}://{conn_id}/{quote(domain, safe='')}"
    return Asset(uri=uri, extra=extra or {})
