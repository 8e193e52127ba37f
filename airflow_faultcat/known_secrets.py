"""The known secret values of one failure: those of the connections and variables its try used.

Format rules cannot recognise a bare password (``hunter2``). The ids of the connections and
variables a task used are in its own log and traceback: Airflow's ``Connection Retrieved 'x'``,
a hook's ``postgres_conn_id='x'``, ``AirflowNotFoundException: The conn_id `x` isn't defined``,
the source line ``Variable.get("db_password")`` of a traceback frame. The collect step finds those
*ids* (:class:`SecretRefs`, passed on in XCom: ids only, never values); each later step of the
recovery run fetches the values in its own worker through the Task SDK
(:func:`known_values`) and masks them as known secrets (:func:`scrubber_for`). Nothing here sends
or stores a value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from airflow_faultcat.core.scrub import MIN_KNOWN_SECRET_LENGTH, Scrubber, is_sensitive_key

__all__ = ["MAX_REFS", "SecretRefs", "known_values", "known_values_for", "scrubber_for"]

log = logging.getLogger(__name__)

#: At most this many connection ids and as many variable keys are looked up per failure.
MAX_REFS = 16
# Connection ids and variable keys: Airflow allows letters, digits, "_", "-" and ".".
_ID = r"(?P<id>[A-Za-z0-9_][\w.\-]{0,249})"
_CONNECTION_RES = (
    re.compile(r"Connection Retrieved '" + _ID + "'"),
    re.compile(r"Using connection ID '" + _ID + "'"),
    re.compile(r"conn(?:ection)?_id\s*\\?[\"']?\s*[=:]\s*\\?[\"'`]?" + _ID),
    re.compile(r"conn_id `" + _ID + "`"),
    re.compile(r"(?:get_connection|Connection\.get)\(\s*(?:conn_id\s*=\s*)?[\"']" + _ID),
)
_VARIABLE_RES = (
    re.compile(r"Variable\.get\(\s*(?:key\s*=\s*)?[\"']" + _ID),
    re.compile(r"var\.(?:value|json)\." + _ID),
    re.compile(r"Variable [\"'`]?" + _ID + r"[\"'`]? (?:does not exist|not found)"),
)
# A line holds no reference unless one of these occurs in it (cheap test before the regexes).
_CONNECTION_HINTS = ("conn", "Connection")
_VARIABLE_HINTS = ("Variable", "var.")
# Nested extras (a service-account key file inside a connection's extra) are walked this deep.
_MAX_EXTRA_DEPTH = 4


@dataclass
class SecretRefs:
    """The ids of the connections and variables a failed try used, as read from its texts.

    :param connections: connection ids, in the order first seen, at most :data:`MAX_REFS`.
    :param variables: variable keys, in the order first seen, at most :data:`MAX_REFS`.
    """

    connections: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)

    def feed(self, text: str) -> None:
        """Add the references found in ``text`` (a log line, a message, a traceback).

        :param text: any text; only the first 64 KiB of it are read.
        """
        text = text[:65536]
        if any(hint in text for hint in _CONNECTION_HINTS):
            self._add(self.connections, _ids(_CONNECTION_RES, text))
        if any(hint in text for hint in _VARIABLE_HINTS):
            self._add(self.variables, _ids(_VARIABLE_RES, text))

    def as_dict(self) -> dict[str, list[str]]:
        """The references as a JSON-ready dict (ids only, safe for XCom)."""
        return {"connections": list(self.connections), "variables": list(self.variables)}

    @classmethod
    def from_dict(cls, raw: Any) -> SecretRefs:
        """Read :meth:`as_dict`'s output back; anything malformed reads as no reference.

        :param raw: a dict with ``connections`` and ``variables`` lists of strings, or anything.
        """
        refs = cls()
        if isinstance(raw, dict):
            for name, target in (("connections", refs.connections), ("variables", refs.variables)):
                values = raw.get(name)
                if isinstance(values, list):
                    cls._add(target, (v for v in values if isinstance(v, str)))
        return refs

    @staticmethod
    def _add(target: list[str], ids: Iterable[str]) -> None:
        for ref in ids:
            if len(target) >= MAX_REFS:
                return
            ref = ref.rstrip(".-")
            if ref and ref not in target:
                target.append(ref)


def _ids(patterns: tuple[re.Pattern[str], ...], text: str) -> Iterator[str]:
    for pattern in patterns:
        for match in pattern.finditer(text):
            yield match.group("id")


def _secret_leaves(value: Any, key: str | None, depth: int) -> Iterator[str]:
    """The string values of an extra that sit under a sensitive key, however deep (bounded)."""
    if depth > _MAX_EXTRA_DEPTH:
        return
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            yield from _secret_leaves(sub_value, str(sub_key), depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _secret_leaves(item, key, depth + 1)
    elif isinstance(value, str) and key is not None and is_sensitive_key(key):
        yield value


def known_values(refs: SecretRefs) -> list[str]:
    """Fetch the secret values behind ``refs`` through the Task SDK (run inside a task).

    A connection gives its password and the values under sensitive keys of its extra
    (``token``, ``private_key``, ``client_secret``...); a variable its value when its key is
    sensitive (``db_password``, ``api_key``: Airflow's own rule for masking variables). An id that
    cannot be read (not defined, no permission, no Task SDK) is skipped and logged at debug level.

    :param refs: the connection ids and variable keys.
    :return: the values, each at least :data:`~airflow_faultcat.core.scrub.MIN_KNOWN_SECRET_LENGTH`
        characters long; they must never leave the process.
    """
    values: list[str] = []
    if refs.connections:
        try:
            from airflow.sdk import BaseHook
        except ImportError:
            BaseHook = None  # type: ignore[assignment,misc]  # noqa: N806
        for conn_id in refs.connections if BaseHook is not None else ():
            try:
                conn = BaseHook.get_connection(conn_id)
            except Exception as exc:  # not defined, or the API refused: nothing to mask
                log.debug("faultcat: connection %s not read for scrubbing: %s", conn_id, type(exc).__name__)
                continue
            if conn.password:
                values.append(str(conn.password))
            try:
                extra = conn.extra_dejson
            except Exception:
                extra = {}
            values.extend(_secret_leaves(extra, None, 0))
    if refs.variables:
        try:
            from airflow.sdk import Variable
        except ImportError:
            Variable = None  # type: ignore[assignment,misc]  # noqa: N806
        for key in refs.variables if Variable is not None else ():
            if not is_sensitive_key(key):
                continue
            try:
                value = Variable.get(key, default=None)
            except Exception as exc:
                log.debug("faultcat: variable %s not read for scrubbing: %s", key, type(exc).__name__)
                continue
            if isinstance(value, str):
                values.append(value)
    return [v for v in values if len(v.strip()) >= MIN_KNOWN_SECRET_LENGTH]


@lru_cache(maxsize=32)
def _cached_values(connections: tuple[str, ...], variables: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(known_values(SecretRefs(list(connections), list(variables))))


@lru_cache(maxsize=32)
def _cached_scrubber(connections: tuple[str, ...], variables: tuple[str, ...]) -> Scrubber:
    return Scrubber(_cached_values(connections, variables))


def _refs_key(collected: dict[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    refs = SecretRefs.from_dict((collected or {}).get("secret_refs"))
    return tuple(refs.connections), tuple(refs.variables)


def known_values_for(collected: dict[str, Any] | None) -> tuple[str, ...]:
    """The known values of one recovery run's failure (cached in this process).

    :param collected: the output of the collect step (its ``secret_refs``), or ``None``.
    """
    return _cached_values(*_refs_key(collected))


def scrubber_for(collected: dict[str, Any] | None) -> Scrubber:
    """The scrubber of one recovery run: the format rules plus the known values of its failure.

    :param collected: the output of the collect step (its ``secret_refs``), or ``None``.
    :return: a :class:`~airflow_faultcat.core.scrub.Scrubber`, cached per set of references in
        this process.
    """
    return _cached_scrubber(*_refs_key(collected))
