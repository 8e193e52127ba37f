"""Reading YAML that a user wrote (postconditions, a recovery policy): bounded in size and expansion.

``yaml.safe_load`` is safe from code execution, not from size: a few lines of anchors and aliases
(the "billion laughs") expand to gigabytes, and a file can be anything, a FIFO included. Every
user-written YAML file outside the pattern library goes through :func:`load_yaml_file` or
:func:`load_yaml_text`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_YAML_BYTES", "UnsafeYamlError", "load_yaml_file", "load_yaml_text"]

#: The largest user YAML document read, in bytes (the shipped files are a few KiB).
MAX_YAML_BYTES = 4 << 20

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnsafeYamlError(ValueError):
    """A YAML document is refused: too large, not a regular file, anchors/aliases, or unreadable."""


def load_yaml_text(text: str, *, what: str = "document") -> Any:
    """Parse ``text`` with a safe loader after refusing anchors and aliases.

    :param text: the YAML text, at most :data:`MAX_YAML_BYTES` bytes in UTF-8.
    :param what: how the document is named in error messages.
    :raises UnsafeYamlError: when the text is too large, uses anchors or aliases, or is not YAML.
    """
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise UnsafeYamlError(f"{what}: larger than {MAX_YAML_BYTES} bytes")
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise UnsafeYamlError(f"{what}: YAML anchors and aliases (&, *) are not allowed")
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise UnsafeYamlError(f"{what}: {exc}") from None
    except RecursionError:
        raise UnsafeYamlError(f"{what}: nested too deeply") from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file: a regular file of at most :data:`MAX_YAML_BYTES` bytes.

    :param path: the file.
    :raises UnsafeYamlError: when it is not a regular file, too large, unreadable or refused by
        :func:`load_yaml_text`; the message names the file.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise UnsafeYamlError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise UnsafeYamlError(f"{path}: {size} bytes; at most {MAX_YAML_BYTES} are read")
        with path.open("rb") as stream:
            data = stream.read(MAX_YAML_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnsafeYamlError(f"{path}: cannot read: {exc}") from None
    return load_yaml_text(text, what=str(path))
