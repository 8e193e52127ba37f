"""Hosts, ports, URLs, paths and sockets named in evidence text, parsed and validated as data.

The patterns run on RE2 (linear time: log text is untrusted). Whatever is extracted is checked
again (a host name by its syntax or as an IP address, a port by its range, a path as absolute and
normalised) so that nothing but a well-formed name, number or path reaches a probe.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import posixpath
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,250}[A-Za-z0-9])?)"
_PATTERNS = {
    "url": r"\b(https?|wss?|redis|postgres(?:ql)?|mysql|amqp)://(?:[^\s/@'\"]+@)?("
    + _HOST
    + r")(?::(\d{1,5}))?",
    "host_port": r"(?:^|[\s'\"(\[=,@])(" + _HOST + r"):(\d{1,5})\b",
    # psycopg/libpq: connection to server at "db" (10.0.0.1), port 5432 / on host "db" ... port 5432
    "host_then_port": (
        r"(?:at|host) \"?(" + _HOST + r")\"?(?: \([^)]{0,60}\))?,?"
        r"(?: and accepting TCP/IP connections on)? port (\d{1,5})"
    ),
    # urllib3 / requests: HTTPSConnectionPool(host='api.example.com', port=443)
    "pool": r"(HTTPS?)ConnectionPool\(host='(" + _HOST + r")', port=(\d{1,5})\)",
    # what a task says it is about to do: "Resolving db.internal", "Connecting to db.internal"
    "intent_host": r"(?:[Rr]esolving|[Cc]onnecting to|[Ll]ooking up)\s+(?:the \w+ at\s+)?['\"]?("
    + _HOST
    + r")['\"]?",
    # resolver errors naming the host
    "dns_host": (
        r"(?:Name or service not known|nodename nor servname provided, or not known|Could not resolve host"
        r"|ENOTFOUND|Unknown host|Name does not resolve|failed to resolve)[:\s'\"]+(" + _HOST + r")"
    ),
    "path": r"(?:^|[\s'\"=(\[])((?:/[A-Za-z0-9._@%+=-]+)+/?)",
    # Airflow's own log lines name the connections a task used.
    "connection": r"(?:[Uu]sing connection ID|Connection Retrieved|conn_id=)\s*'?([A-Za-z0-9_.-]{1,250})'?",
    # Docker and podman errors: "No such container: web-1", "container web-1 is not running".
    "container": r"(?:[Nn]o such container:?|[Cc]ontainer)\s+['\"]?([A-Za-z0-9][A-Za-z0-9_.-]{0,127})['\"]?",
    # The scheduler: "Not scheduling since there are 0 open slots in pool default_pool".
    "airflow_pool": r"(?:open slots in pool|[Pp]ool[:=])\s*['\"]?([A-Za-z0-9_.-]{1,256})['\"]?",
}


class Targets(BaseModel):
    """What a failure's evidence names, deduplicated, in order of appearance.

    :param endpoints: ``(host, port)`` pairs.
    :param hosts: host names and addresses (endpoint hosts included).
    :param tls: ``(host, port)`` of https/wss URLs.
    :param paths: absolute file system paths (sockets excluded).
    :param sockets: unix socket paths (``*.sock``, ``*-sock``, ``*.socket``).
    :param connections: Airflow connection ids the task used (from Airflow's own log lines).
    :param containers: container names or ids a Docker or podman error names.
    :param pools: Airflow pools the scheduler's lines name.
    """

    model_config = ConfigDict(extra="forbid")

    endpoints: list[tuple[str, int]] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)
    tls: list[tuple[str, int]] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    sockets: list[str] = Field(default_factory=list)
    connections: list[str] = Field(default_factory=list)
    containers: list[str] = Field(default_factory=list)
    pools: list[str] = Field(default_factory=list)


@functools.lru_cache(maxsize=1)
def _compiled() -> dict[str, object]:
    import re2

    options = re2.Options()
    options.max_mem = 32 << 20
    return {name: re2.compile(pattern, options) for name, pattern in _PATTERNS.items()}


def valid_host(text: str) -> str | None:
    """``text`` as a host name or IP address (brackets of an IPv6 literal removed), or None."""
    host = text.strip().strip("[]").rstrip(".")
    if not host or len(host) > 253:
        return None
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    labels = host.split(".")
    if (
        all(
            0 < len(label) <= 63
            and label[0].isalnum()
            and label[-1].isalnum()
            and all(c.isalnum() or c == "-" for c in label)
            for label in labels
        )
        and not host.replace(".", "").isdigit()
    ):
        return host.lower()
    return None


def valid_port(text: str | int) -> int | None:
    """``text`` as a TCP port (1-65535), or None."""
    try:
        port = int(text)
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def valid_path(text: str) -> str | None:
    """``text`` as a normalised absolute path, or None (relative, NUL, ``..`` that escapes)."""
    if not text.startswith("/") or "\0" in text or len(text) > 4096:
        return None
    path = posixpath.normpath(text)
    return path if path.startswith("/") else None


_DEFAULT_PORTS = {
    "https": 443,
    "wss": 443,
    "http": 80,
    "ws": 80,
    "redis": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "amqp": 5672,
}
_SOCKET_SUFFIXES = (".sock", "-sock", ".socket")
# Source files and installed packages: a traceback's frames, not where the task wrote. Probing the
# disk under them says nothing of a "No space left" on the task's own output path.
_CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".jar", ".class", ".rb", ".js")
_CODE_FOLDERS = ("/site-packages/", "/dist-packages/", "/lib/python")
# Version-like or code-like "hosts" that are not hosts (a.b.c module paths are ruled out by the
# DNS-name check only when they contain characters a host cannot have).
_NOT_HOSTS = frozenset({"localhost.localdomain"})
# Words after "container" in prose that are not names.
_NOT_CONTAINERS = frozenset(
    {"is", "was", "has", "exited", "with", "for", "the", "a", "an", "not", "name", "id"}
)


def extract_targets(texts: Iterable[str], *, limit: int = 20) -> Targets:
    """Parse what the texts name; at most ``limit`` of each kind."""
    found = Targets()
    seen: set[tuple[str, object]] = set()

    def add(kind: str, value: object) -> None:
        bucket = getattr(found, kind)
        if (kind, value) not in seen and len(bucket) < limit:
            seen.add((kind, value))
            bucket.append(value)

    regexes = _compiled()
    for text in texts:
        text = text[:20000]
        for m in regexes["url"].finditer(text):  # type: ignore[attr-defined]
            scheme, host, port = m.group(1).lower(), valid_host(m.group(2)), m.group(3)
            port = valid_port(port) if port else _DEFAULT_PORTS.get(scheme)
            if host and port:
                add("endpoints", (host, port))
                add("hosts", host)
                if scheme in ("https", "wss"):
                    add("tls", (host, port))
        for name in ("host_port", "host_then_port"):
            for m in regexes[name].finditer(text):  # type: ignore[attr-defined]
                host, port = valid_host(m.group(1)), valid_port(m.group(2))
                if host and port and host not in _NOT_HOSTS and not _looks_like_time(m.group(1), m.group(2)):
                    add("endpoints", (host, port))
                    add("hosts", host)
        for m in regexes["pool"].finditer(text):  # type: ignore[attr-defined]
            host, port = valid_host(m.group(2)), valid_port(m.group(3))
            if host and port:
                add("endpoints", (host, port))
                add("hosts", host)
                if m.group(1) == "HTTPS":
                    add("tls", (host, port))
        for m in regexes["intent_host"].finditer(text):  # type: ignore[attr-defined]
            host = valid_host(m.group(1))
            if host and "." in host or host == "localhost":
                add("hosts", host)
        for m in regexes["dns_host"].finditer(text):  # type: ignore[attr-defined]
            host = valid_host(m.group(1))
            if host:
                add("hosts", host)
        for m in regexes["connection"].finditer(text):  # type: ignore[attr-defined]
            add("connections", m.group(1))
        for m in regexes["container"].finditer(text):  # type: ignore[attr-defined]
            if m.group(1).lower() not in _NOT_CONTAINERS:
                add("containers", m.group(1))
        for m in regexes["airflow_pool"].finditer(text):  # type: ignore[attr-defined]
            add("pools", m.group(1))
        for m in regexes["path"].finditer(text):  # type: ignore[attr-defined]
            path = valid_path(m.group(1))
            if path and path != "/" and not _is_code(path):
                add("sockets" if path.endswith(_SOCKET_SUFFIXES) else "paths", path)
    return found


def _is_code(path: str) -> bool:
    return path.endswith(_CODE_SUFFIXES) or any(folder in path for folder in _CODE_FOLDERS)


def _looks_like_time(host: str, port: str) -> bool:
    """``10:30`` or ``12:00:01`` are times, not host:port."""
    return host.isdigit() and len(host) <= 2 and len(port) <= 2
