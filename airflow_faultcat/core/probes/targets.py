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
    + r")(?::(\d{1,5}))?(/[A-Za-z0-9._~%!$&*+,;=:@/-]*)?",
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
    # A lookup of a missing key: "KeyError: 'batch_id'".
    "conf_key": r"KeyError:?\s*['\"]([A-Za-z0-9_.-]{1,250})['\"]",
    # The size of an allocation that failed or is about to be made: NumPy's "Unable to allocate
    # 74.5 GiB for an array", PyTorch's "Tried to allocate 2.00 GiB", "failed to allocate 1048576
    # bytes", a task's own "Allocating 25.0 GiB for ...".
    "alloc": r"(?i)(?:unable to allocate|cannot allocate|failed to allocate|tried to allocate|allocating)"
    r"\s+(\d{1,15}(?:\.\d{1,6})?)\s*(bytes|[KMGTP]i?B)\b",
    # A line that says a path is not there: its paths are worth a stat.
    "missing": r"(?i)no such file|does not exist|not found|cannot access|cannot stat|FileNotFoundError",
    # Documentation links that errors print ("For more information check: https://..."): not
    # something the task talked to.
    "doc_lead": r"(?i)(?:for more information(?: check)?|background on this error at|see also|docs?)[:\s]*$",
    # An ISO timestamp's date and hour ("2026-12-04T19:07:04") read as host:port.
    "iso_hour": r"^\d{4}-\d{2}-\d{2}[Tt]\d{1,2}$",
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
    :param urls: ``http(s)://host:port/path`` of the URLs named (query, fragment and credentials
        dropped).
    :param missing_paths: paths (sockets excluded) on lines that say a path is not there.
    :param conf_keys: keys a ``KeyError`` names.
    :param alloc_bytes: sizes in bytes of the memory allocations the texts name.
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
    urls: list[str] = Field(default_factory=list)
    missing_paths: list[str] = Field(default_factory=list)
    conf_keys: list[str] = Field(default_factory=list)
    alloc_bytes: list[int] = Field(default_factory=list)


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


def valid_url(text: str) -> str | None:
    """``text`` as ``http(s)://host:port/path``, or None: another scheme, credentials, a query or a
    fragment (a probe asks for the page, never with what a log put in the URL), a bad host or port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return None
    host = valid_host(parts.hostname or "")
    port = valid_port(port or _DEFAULT_PORTS[parts.scheme])
    path = parts.path or "/"
    if not host or not port or not path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in path):
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{port}{path}"


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
            if regexes["doc_lead"].search(text[max(0, m.start() - 40) : m.start()]):  # type: ignore[attr-defined]
                continue
            scheme, host, port = m.group(1).lower(), valid_host(m.group(2)), m.group(3)
            port = valid_port(port) if port else _DEFAULT_PORTS.get(scheme)
            if host and port:
                add("endpoints", (host, port))
                add("hosts", host)
                if scheme in ("https", "wss"):
                    add("tls", (host, port))
                if scheme in ("http", "https"):
                    shown = f"[{host}]" if ":" in host else host
                    url = valid_url(f"{scheme}://{shown}:{port}{(m.group(4) or '/').rstrip('.,;:')}")
                    if url:
                        add("urls", url)
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
        for m in regexes["conf_key"].finditer(text):  # type: ignore[attr-defined]
            add("conf_keys", m.group(1))
        for m in regexes["alloc"].finditer(text):  # type: ignore[attr-defined]
            add("alloc_bytes", _bytes(m.group(1), m.group(2)))
        says_missing = regexes["missing"].search(text) is not None  # type: ignore[attr-defined]
        for m in regexes["path"].finditer(text):  # type: ignore[attr-defined]
            path = valid_path(m.group(1))
            if path and path != "/" and not _is_code(path):
                socket_path = path.endswith(_SOCKET_SUFFIXES)
                add("sockets" if socket_path else "paths", path)
                if says_missing and not socket_path:
                    add("missing_paths", path)
    return found


_UNITS = {"b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def _bytes(number: str, unit: str) -> int:
    """``25.0`` ``GiB`` as bytes (``GiB`` binary, ``GB`` decimal, ``bytes`` as is)."""
    unit = unit.lower()
    scale = 1 if unit == "bytes" else _UNITS[unit[0]]
    if "i" in unit and scale > 1:
        scale = 1024 ** (list(_UNITS).index(unit[0]))
    return int(float(number) * scale)


def _is_code(path: str) -> bool:
    return path.endswith(_CODE_SUFFIXES) or any(folder in path for folder in _CODE_FOLDERS)


def _looks_like_time(host: str, port: str) -> bool:
    """``10:30``, ``12:00:01`` or ``2026-12-04T19:07`` are times, not host:port."""
    if host.isdigit() and len(host) <= 2 and len(port) <= 2:
        return True
    return len(port) <= 2 and _compiled()["iso_hour"].search(host) is not None  # type: ignore[attr-defined]
