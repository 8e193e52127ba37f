"""Secret scrubbing: every text that leaves the process goes through :class:`Scrubber` first.

Evidence (log excerpts, tracebacks, connection dumps) is published to files, GitHub issues, Slack
and LLMs. Before that, :class:`Scrubber` replaces each secret *value* with ``***`` and keeps the
rest of the line, so a reader still understands it::

    postgresql://airflow:***@db:5432/airflow
    Authorization: Bearer ***
    password=***
    -----BEGIN RSA PRIVATE KEY----- *** -----END RSA PRIVATE KEY-----

What counts as a secret:

* *known secrets* passed in (for example the values Airflow's secrets masker holds), also in
  their URL-encoded and JSON-escaped forms, longest first;
* *formats*: a registry of :class:`SecretRule` objects, each with a stable ``rule_id``. Token
  formats come from detect-secrets' plugins where they fit (their ``denylist`` regexes, its JWT
  validity check and its keyword list); the rest (URL passwords, ``Authorization`` headers, Vault,
  Azure, key-value pairs, CLI flags, PEM blocks) are defined here.

detect-secrets' high-entropy string plugins are deliberately not used: git SHAs, checksums, image
digests, run ids and UUIDs look random too, and they must survive.

Speed: most log lines hold no secret, so one RE2 ``Set`` of cheap literal triggers (``akia``,
``://``, ``token``...) decides per line which rules run at all; only those rules' Python regexes
run, and only on that line. This module never imports ``airflow``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any
from urllib.parse import quote, quote_plus

import re2
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import DENYLIST as KEYWORD_DENYLIST
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector

from airflow_faultcat.core.scrub_formats import VENDOR_TOKENS

__all__ = [
    "CUT_MARGIN",
    "MAX_OBJ_DEPTH",
    "MIN_KNOWN_SECRET_LENGTH",
    "RULES",
    "Redaction",
    "Scrubber",
    "KeyValueRule",
    "SecretRule",
    "is_sensitive_key",
    "scrub",
]

#: Known secrets shorter than this are ignored: masking ``"abc"`` everywhere would shred the text.
MIN_KNOWN_SECRET_LENGTH = 4
#: Characters scrubbed beyond a cut (:meth:`Scrubber.scrub_cut`): a secret that straddles the cut is
#: seen whole, since tokens are shorter than this.
CUT_MARGIN = 4096
#: Containers nested deeper than this in :meth:`Scrubber.scrub_obj` are replaced whole.
MAX_OBJ_DEPTH = 64

_DEFAULT_REPLACEMENT = "***"


@dataclass(frozen=True, slots=True)
class Redaction:
    """One span that :class:`Scrubber` replaces; it never carries the secret itself.

    :param rule: stable id of the rule that found it (``"aws_access_key"``, ``"url_password"``,
        ``"known_secret"``...); see :data:`RULES` and :meth:`Scrubber.rule_ids`.
    :param line: 1-based number of the line where the span starts.
    :param start: 0-based character offset of the span in the scanned text (inclusive).
    :param end: character offset where the span ends (exclusive); a PEM block spans lines.
    """

    rule: str
    line: int
    start: int
    end: int


# --------------------------------------------------------------------------------------------
# Helpers used by rule checks
# --------------------------------------------------------------------------------------------

_PLACEHOLDER_WORDS = frozenset(
    {
        "",
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "redacted",
        "[redacted]",
        "<redacted>",
        "masked",
        "[masked]",
        "<masked>",
        "hidden",
        "<hidden>",
        "[hidden]",
        "[filtered]",
        "filtered",
        "[secure]",
        "<secret>",
        "<password>",
        "<token>",
        # "(using password: YES)" is MySQL's wording; the rest are empty or format placeholders.
        "yes",
        "no",
        "empty",
        "unset",
        "required",
        "enabled",
        "disabled",
        "enable",
        "disable",
        "on",
        "off",
        "n/a",
        "%s",
        "?",
        "{}",
        # The key's own name as its value ("POSTGRES_PASSWORD=password"), documented defaults.
        "password",
        "passwd",
        "secret",
        "token",
        "mypassword",
        "yourpassword",
        "your_password",
        "your-password",
        "notasecret",
        # Terraform's plan output and type annotations ("password: &str").
        "(sensitive)",
        "(sensitive value)",
        "(sensitive",
        "(known after apply)",
        "(known",
        "str",
        "&str",
        "string",
        "bytes",
        "secretstr",
        "optional[str]",
        "option<string>",
    }
)
# ${VAR}, $DB_PASSWORD, $password, {{ var }}, ${{ secrets.X }}, %(var)s, <your-token>, $(cmd),
# glrt-<TOKEN>, a function call: references to a secret or code, not the secret. A "$" word with a
# digit is a password ("$uperS3cret"); "{{" and "$(" may have lost their end at a space.
_PLACEHOLDER_RE = re.compile(
    r"\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|\$[a-z_][A-Za-z_]*(?:->.*|\[.*)?|\$?\{\{.*|%\([A-Za-z_]\w*\)s"
    r"|[\w.\-]*<[A-Za-z_][^<>]*>|<[^<>]*>.*|<<[^<>]*>>|<[A-Za-z][A-Za-z_\-]*|!vault\s*\|?"
    # [password]--db (a bracketed fill-in), %s ..., %%DB_PASSWORD%%, ",pwd," (code around a
    # string), a short value masked by hand with a run of x, var.db_password (Terraform), " + DB_PASS + "
    r"|\[[A-Za-z_][\w \-]*\].*|%[sdr](?:\s.*)?|%%?[A-Za-z_]\w*%%?|[,+)]\s*[A-Za-z_]\w*\s*[,+)(].*"
    r"|(?=.{0,24}$).*(?:X{4,}|x{4,}).*"
    r"|\$[\d@*#?]|\$env:[A-Za-z_]\w*|\$[A-Za-z_][A-Za-z_]*|\([a-z][a-z ]{2,30}\)|\$\$[A-Za-z_]\w*"
    r"|(?:var|local|module|each)\.[\w.\[\]\"\-]+|\s*\+\s*[A-Za-z_][\w.\[\]()]*\s*\+?\s*|\$\(.*"
    # a call: get_secret(...), base64("..."); not op34(opc2@...
    r"|(?!ENC\()[A-Za-z_](?:[A-Za-z_.]*[A-Za-z_])?\(.*|[A-Za-z_][\w.]*\((?:[\"')].*)?"
    r"|[A-Z][a-z]+(?:To)?-[A-Z][A-Za-z]+|.*\*\*\*.*|[|>][+-]?\d?"
    # YOUR_API_KEY, [REDACTED], {password}, {0}, xxxx-xxxx, ..., self.password, process.env.TOKEN
    r"|.*\.\.\..*|(?:[a-z]+[-_ ])*(?:password|passwd|secret|token|key)(?:[-_ ][a-z]+)*"
    r"|[A-Z]+(?:_[A-Z]+)+|\[[^\]]*\]|\{[^{}]*\}|[xX*.•#_\-]+|\.\.\.|…"
    r"|(?:self|this|os|process|config|settings|args|env|params|request|secrets|vars|ctx|context|cfg"
    r"|conf|options|opts|data|kwargs|creds|credentials)(?:\.[A-Za-z_]\w*|\[[^\]]*\])+"
)


_DEFAULT_VALUE_RE = re.compile(r"\$\{[A-Za-z_][\w.\-]*:-?(?P<d>[^}]{6,})\}")


# A type annotation: "token: Optional[str] = None", "clientSecret: string;", "key: str | None".
_TYPE_HINT_RE = re.compile(
    r"(?:Optional\[[\w\[\], ]*\]|(?:str|string|String|bytes|int|number|bool|boolean|any|unknown|undefined"
    r"|null|None|SecretStr|Secret|Text)(?:\[[\w\[\], ]*\])?)"
    r"(?:\s*\|\s*(?:str|string|null|None|undefined|bytes))*\s*(?:=\s*(?:None|null|undefined|\"\"|''))?[;,]?"
)


def _is_placeholder(value: str, replacement: str = _DEFAULT_REPLACEMENT) -> bool:
    """Return True when ``value`` is already masked, empty or a reference such as ``${DB_PASS}``.

    :param value: the candidate secret value.
    :param replacement: the scrubber's own replacement, which must never be masked again.
    """
    stripped = value.strip().strip("\"'")
    if stripped.lower() in _PLACEHOLDER_WORDS or stripped == replacement or _TYPE_HINT_RE.fullmatch(stripped):
        return True
    # "***", "********", "xxxxxxxx": masks and fill-ins, not secrets.
    if len(set(stripped.lower())) == 1 and stripped[0] in "*xX#.-•":
        return True
    default = _DEFAULT_VALUE_RE.fullmatch(stripped)
    if default is not None and (_mixed(default.group("d")) or _looks_random(default.group("d"))):
        return False  # ${DB_PASSWORD:S3cret!}: Spring's and the shell's default is the secret itself
    if "..." in stripped:
        # "/cOu9BrTQxspyluCpPom......": a secret cut short is still most of a secret.
        core = max(stripped.split("..."), key=len).strip(".…")
        if len(core) >= 12 and _looks_random(core) and not _PLACEHOLDER_RE.fullmatch(core):
            return False
    return _PLACEHOLDER_RE.fullmatch(stripped) is not None


def _mixed(value: str) -> bool:
    """Return True when ``value`` mixes upper case, lower case and digits (random-looking token).

    :param value: the candidate token.
    """
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


# secretName, existingSecret: an identifier in camel case, not a generated value.
_CAMEL_WORDS_RE = re.compile(r"[a-z]{2,}(?:[A-Z][a-z]{2,})+")
# A k8s-style name ("airflow-db-secret", "worker.pool-2"): words, not a credential.
_NAME_LIKE_RE = re.compile(r"[a-z]+(?:[-_.][a-z0-9]+)*")


def _looks_random(value: str) -> bool:
    """Return True when an unquoted value after a generic key (``token: X``) looks like a credential.

    Used only where the key alone is weak evidence, e.g. ``Using secret: airflow-connections``.

    :param value: the candidate value.
    """
    if len(value) < 8 or _NAME_LIKE_RE.fullmatch(value) or _CAMEL_WORDS_RE.fullmatch(value):
        return False
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(c in "+/=!@#$%^&*~" for c in value),
        )
    )
    return classes >= 2


def _basic_credentials(value: str) -> bool:
    """Return True when ``value`` is base64 of ``user:password`` (an HTTP Basic credential).

    :param value: the base64 text after ``Basic``.
    """
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


def _mixed_case_token(value: str) -> bool:
    """Check for tokens whose body is random base62: at least mixed case and a digit.

    :param value: the whole token, prefix included.
    """
    return _mixed(value.split("-", 1)[-1].split("_", 1)[-1]) or _mixed(value)


def _spaced_secret(value: str) -> bool:
    """Return True when a value written after its key with only blanks (``secret X``) or in a
    sentence (``the token is X``) looks generated: upper, lower and digits, or long and random.

    :param value: the candidate value.
    """
    if "://" in value or _PATH_VALUE_RE.fullmatch(value):
        return False
    if "/" in value and any(_NAME_LIKE_RE.fullmatch(part) for part in value.split("/")):
        return False  # "Secret airflow/WebserverKey1": a name in a store, not its value
    return _mixed(value) or (len(value) >= 16 and _looks_random(value) and "/" not in value.strip("/"))


# --------------------------------------------------------------------------------------------
# Sensitive key names (key=value, "key": "value", --key value, dict keys in scrub_obj)
# --------------------------------------------------------------------------------------------

# detect-secrets' KeywordDetector list (api_?key, private_?key, db_?pass, password, pwd, secret...)
# plus names it lacks. Matched against the *end* of the normalised key: "fernet_key" and
# "aws_secret_access_key" are secrets, "password_file" and "token_type" are not.
_STRONG_KEY_WORDS = (
    *KEYWORD_DENYLIST,
    "passphrase",
    "passcode",
    "signature_?provided",
    "preshared_?key",
    "psk",
    "wpa_?psk",
    "tls_?key",
    "ssl_?key",
    "license_?key",
    "deploy_?key",
    "hmac_?key",
    "consumer_?key",
    "write_?key",
    "ingest_?key",
    "enrollment_?key",
    "dockercfg",
    "dockerconfigjson",
    # Session cookies: whoever has the value is logged in.
    "jsessionid",
    "phpsessid",
    "sessionid",
    "asp_?net_?session_?id",
    "connect_?sid",
    "laravel_?session",
    "access_?key",
    "secret_?key",
    "fernet_?key",
    "signing_?key",
    "encryption_?key",
    "master_?key",
    "shared_?key",
    "shared_?access_?key",
    "app_?key",
    "pagerduty_?routing_?key",
    "sshpass",
    "rediscli_?auth",
    "basic_?auth",
    "proxy_?auth",
    "http_?auth",
    "subscription_?key",
    "storage_?key",
    "session_?key",
    "integration_?key",
    "private_?key_?id",
    "sas_?token",
    "shared_?access_?signature",
    "api_?secret",
    "client_?secret",
    "app_?secret",
    "consumer_?secret",
    "webhook_?secret",
    "jwt_?secret",
    "auth_?token",
    "access_?token",
    "refresh_?token",
    "id_?token",
    "api_?token",
    "bot_?token",
    "session_?token",
    "security_?token",
    "bearer_?token",
    "oauth_?token",
    "vault_?token",
    # Service configs: sssd's ldap_default_authtok, slapd's rootpw, nslcd's bindpw, redis.
    "authtok",
    "bind_?pw",
    "root_?pw",
    "requirepass",
    "masterauth",
    "functions_?key",
)
_STRONG_KEY_RE = re.compile(r"(?:^|_)(?:" + "|".join(_STRONG_KEY_WORDS) + r")$")
# Suffix without a word boundary: PGPASSWORD, clientsecret, accesstoken, x_vault_token.
_GENERIC_KEY_RE = re.compile(r"(?:password|passwd|secret|token)$")
# smtp_pass, ansible_become_pass, rpc_pass: a "_pass" suffix names a password, except in words
# about passes (first_pass, multi_pass) and bypass/compass.
_PASS_SUFFIX_RE = re.compile(r"(?<!first)(?<!second)(?<!single)(?<!multi)(?<!one)(?<!two)(?<!by)_pass$")
_NOT_SECRET_KEYS = frozenset(
    {
        # Pagination and idempotency tokens are opaque but not credentials.
        "page_token",
        "next_token",
        "next_page_token",
        "continuation_token",
        "pagination_token",
        "sync_token",
        "resume_token",
        "client_token",
        "idempotency_token",
        "request_token",
        "cancellation_token",
        "cancel_token",
        # Handled by the authorization_header rule, which keeps the scheme visible.
        "authorization",
        "proxy_authorization",
        # A command's name: "sshpass -p X" is the cli_flag rule's.
        "sshpass",
    }
)
_CAMEL_RE = re.compile(r"([a-z0-9])([A-Z])")
_QUALIFIER_RE = re.compile(
    r"(?:_(?:aws|gcp|azure|prod|production|dev|test|stage|staging|value|val|str|string|b64|base64|enc|base|hex|bytes"
    r"|encoded|raw|env|var|plain|plaintext|new|old|current|\d+))+$"
)
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")
_DIGIT_WORD_RE = re.compile(r"(?<=[a-z])([0-9])([a-z]{3,})")


def _normalise_key(key: str) -> str:
    """Turn ``--conn-password``, ``"SecretAccessKey"`` or ``fs.s3a.secret.key`` into snake case.

    :param key: the raw key as written.
    """
    key = _CAMEL_RE.sub(r"\1_\2", key.strip("-\"'"))
    # s3secretKey, gcs2token: a digit ends a word as a capital starts one.
    return _DIGIT_WORD_RE.sub(r"\1_\2", _NON_ALNUM_RE.sub("_", key.lower())).strip("_")


@lru_cache(maxsize=4096)
def _key_strength(key: str) -> int:
    """Rate how sure a key name makes us that its value is a secret.

    :param key: the raw key as written.
    :return: 2 for a strong name (``password``, ``api_key``...), 1 for a generic one (``token``,
        ``secret``), 0 for a name that is not sensitive.
    """
    norm = _normalise_key(key)
    if not norm or norm in _NOT_SECRET_KEYS:
        return 0
    # s3SecretKeyAws, DB_PASSWORD_PROD, api_key_b64: a qualifier after the sensitive word.
    stripped = _QUALIFIER_RE.sub("", norm)
    if stripped and stripped != norm:
        norm = stripped
    if norm in ("token", "secret", "pass", "pw"):
        return 1
    if (
        _STRONG_KEY_RE.search(norm)
        or norm.endswith(("password", "passwd", "api_key", "apikey"))
        or _PASS_SUFFIX_RE.search(norm)
    ):
        return 2
    if _GENERIC_KEY_RE.search(norm):
        return 1
    return 0


def is_sensitive_key(key: str) -> bool:
    """Return True when ``key`` names a secret (``password``, ``api_key``, ``AccountKey``...).

    :param key: a dict key, env var name, JSON/YAML key or CLI flag.
    """
    return _key_strength(key) > 0


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TOKEN_EDGE = _WORD_CHARS
_PATH_EDGE = _WORD_CHARS | frozenset(".-/")


def _edge_before(line: str, index: int, chars: frozenset[str]) -> bool:
    """Return True when ``line[index]`` is not preceded by one of ``chars``.

    The "n" of an escaped line break (``\\n`` in a JSON-encoded log) counts as an edge.

    :param line: the text.
    :param index: the position to test.
    :param chars: characters that would continue the word.
    """
    if index == 0 or line[index - 1] not in chars:
        return True
    return index >= 2 and line[index - 2] == "\\" and line[index - 1] in "nrt"


@dataclass(frozen=True)
class SecretRule:
    """One kind of secret: a stable id, cheap triggers, and how to find the value in a line.

    Patterns start with a literal wherever possible (Python's ``re`` then skips ahead at C speed);
    the "not inside a longer word" test that a leading look-behind would express is done on
    :attr:`not_after` instead.

    :param rule_id: stable id reported in :class:`Redaction` (a contract, never renamed).
    :param triggers: lower-case literals; the rule runs on a line only if one occurs in it (a
        trigger that starts with ``re:`` is an RE2 regex, matched without case).
    :param pattern: Python regex run on the line; it must not backtrack badly (no nested
        unbounded quantifiers over the same characters).
    :param groups: groups holding the secret value; the first one that took part is used.
    :param check: optional validation of the value (look-alike guard).
    :param requires: optional regex that must also occur in the line.
    :param not_after: characters that must not precede the match (a word edge).
    :param lowered: run :attr:`pattern` on the lower-cased line (a caseless match without the
        cost of ``re.IGNORECASE``); the pattern is then written in lower case.
    :param origin: where the format rule comes from, for documentation
        (``"detect-secrets:AWSKeyDetector"`` or ``"faultcat"``).
    """

    rule_id: str
    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    groups: tuple[int | str, ...] = (0,)
    check: Callable[[str], bool] | None = None
    requires: re.Pattern[str] | None = None
    not_after: frozenset[str] = frozenset()
    lowered: bool = False
    origin: str = "faultcat"

    def spans(self, line: str, lowered: str, replacement: str) -> Iterator[tuple[int, int]]:
        """Yield ``(start, end)`` of each secret value in ``line``.

        :param line: one line of text.
        :param lowered: the same line in lower case, with the same length.
        :param replacement: the scrubber's replacement, never treated as a secret.
        """
        if self.requires is not None and self.requires.search(line) is None:
            return
        for match in self.pattern.finditer(lowered if self.lowered else line):
            if self.not_after and not _edge_before(line, match.start(), self.not_after):
                continue
            for group in self.groups:
                start, end = match.span(group)
                if start >= 0:
                    break
            else:
                continue
            while end > start and line[end - 1] in " \t\r\n":
                end -= 1
            value = line[start:end]
            if start == end or _is_placeholder(value, replacement):
                continue
            if self.check is not None and not self.check(value):
                continue
            yield start, end


_KEY_CHARS = _WORD_CHARS | frozenset(".-")
# An English word: after "password:" inside a sentence it is prose, not a secret.
_WORD_RE = re.compile(r"[A-Z]?[a-z]+")
# Words that follow "--password" in help and warning texts.
_FLAG_STOP_WORDS = frozenset(
    "via is are was were be the a an and or to for from with without in on of by as at not no "
    "option options flag flags argument arguments parameter parameters instead must should can "
    "may will has have file stdin prompt value here there".split()
)
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_FORMAT_FIELD_RE = re.compile(r"\d+|[a-z_][a-z0-9_]*")
# An absolute or relative file path ("/run/secrets/db", "~/.aws/credentials"): where a secret is.
_PATH_VALUE_RE = re.compile(r"(?:/|~/|\.\.?/)[\w.\-]+(?:/[\w.\-]+)+/?|/[\w.\-]+")
# Flags that take a password although their name says only "pass" (redis-cli --pass, keytool).
_FLAG_SECRET_NAMES = frozenset({"pass", "storepass", "srcstorepass", "deststorepass", "new_pass", "pw"})


def _blank_before(line: str, position: int) -> bool:
    """Whether only blanks and dashes come before ``position`` (a YAML key at a line's start),
    reading a bounded stretch first: a long line must not be copied once per key."""
    if line[max(0, position - 256) : position].strip(" \t-"):
        return False
    return position <= 256 or not line[:position].strip(" \t-")


def _bare_value_end(line: str, key_start: int, start: int, end: int, operator: str, flag: bool) -> int:
    """Where an unquoted value really ends.

    In a URL query (``?token=X&page=2``) it ends at ``&`` or ``#``; a closing bracket that the value
    did not open belongs to the text around it (``Conn(password=X)``); a YAML ``key: value`` line
    keeps the rest of the line (``password: correct horse battery``) up to a comment.

    :param line: the line.
    :param key_start: where the key starts.
    :param start: where the value starts.
    :param end: where the unquoted value pattern stopped.
    :param operator: the operator between key and value.
    :param flag: the key is a command-line flag.
    """
    before = line[max(0, key_start - 1) : key_start]
    if before in ('"', "'") and operator == "=":
        # -e "DB_PASSWORD=two words": the quote around the pair ends the value.
        closing = line.find(before, start, start + 512)
        if closing > start:
            return closing
    if before in ("?", "&") or operator.startswith("%"):
        for stop in ("&", "#", "%26"):
            cut = line.find(stop, start, end)
            if cut >= 0:
                end = cut
    elif operator == ":" and not flag and _blank_before(line, key_start):
        rest = line[start:].rstrip("\r\n")
        comment = rest.find(" #")
        end = start + len((rest if comment < 0 else rest[:comment]).rstrip())
    while end > start and line[end - 1] in _CLOSERS:
        opener = _CLOSERS[line[end - 1]]
        if line.count(opener, start, end) >= line.count(line[end - 1], start, end):
            break
        end -= 1
    return end


_KEY_TAIL_RE = re.compile(r"[\w.\-]{0,100}")
_KEY_RUN_RE = re.compile(r"[\w.\-]*")
_MAX_KEY = 100


@dataclass(frozen=True)
class KeyValueRule(SecretRule):
    """A value after a sensitive key: ``password=X``, ``"api_key": "X"``, ``--token X``.

    :attr:`pattern` finds sensitive words (``pass``, ``token``, ``key``...) in the lower-cased
    line; each hit is widened to the whole key (``AIRFLOW__CORE__FERNET_KEY``), which must
    fully match :attr:`key_pattern` and be sensitive by name (see :func:`is_sensitive_key`).
    Then :attr:`op_pattern` and :attr:`value_pattern` are matched right after the key. This keeps
    the cost linear on hostile lines such as ``key=key=key=...``.

    A generic key (``token``, ``secret``) followed by ``:`` and an unquoted value needs a
    random-looking value, because prose such as ``Using secret: airflow-connections`` is common.

    :param key_pattern: what a whole key looks like (``--password``, ``"api_key"``...).
    :param op_pattern: the operator between key and value (optionally as group ``op``).
    :param value_pattern: the value, as group ``dq``, ``sq``, ``eq`` or ``hq`` (double, single,
        backslash-escaped or HTML-escaped double quotes, without the quotes) or ``bare`` (unquoted).
    :param flag: the key is a command-line flag (``--password X``): the value is not an English
        word such as "via" and does not start with ``-``.
    """

    key_pattern: re.Pattern[str] | None = None
    op_pattern: re.Pattern[str] | None = None
    value_pattern: re.Pattern[str] | None = None
    flag: bool = False

    def __post_init__(self) -> None:
        if self.key_pattern is None or self.op_pattern is None or self.value_pattern is None:
            raise ValueError(f"KeyValueRule {self.rule_id!r} needs key, op and value patterns")

    def spans(self, line: str, lowered: str, replacement: str) -> Iterator[tuple[int, int]]:
        """Yield ``(start, end)`` of each secret value in ``line``.

        :param line: one line of text.
        :param lowered: the same line in lower case, with the same length.
        :param replacement: the scrubber's replacement, never treated as a secret.
        """
        key_pattern, op_pattern, value_pattern = self.key_pattern, self.op_pattern, self.value_pattern
        if key_pattern is None or op_pattern is None or value_pattern is None:  # pragma: no cover
            return
        done = 0  # words before this offset belong to a key (or value) already handled
        for word in self.pattern.finditer(lowered):
            if word.start() < done:
                continue
            # The key characters right before the word, read backwards at C speed.
            before = line[max(0, word.start() - _MAX_KEY) : word.start()][::-1]
            run = _KEY_RUN_RE.match(before).end()  # type: ignore[union-attr]
            at = word.start()
            if run >= _MAX_KEY and at > _MAX_KEY and line[at - _MAX_KEY - 1] in _KEY_CHARS:
                # Inside a run of key characters longer than any key (a 4 MB value): none of its
                # words starts a key, so skip the whole run at once.
                done = _KEY_RUN_RE.match(line, word.start()).end()  # type: ignore[union-attr]
                continue
            key_start = word.start() - run
            if run and key_start > 0 and line[key_start - 1] == "\\" and line[key_start] in "nrt":
                key_start += 1  # "\npassword" in a JSON-encoded log: the key starts after the escape
            key_end = _KEY_TAIL_RE.match(line, word.end()).end()  # type: ignore[union-attr]
            done = key_end
            if not _edge_before(line, key_start, _KEY_CHARS) or (
                key_end < len(line) and line[key_end] in _KEY_CHARS
            ):
                continue  # longer than _MAX_KEY: not a key name
            if line[max(0, key_start - 2) : key_start] == "//":
                continue  # URL userinfo ("https://x-access-token:T@host"): the url_password rule
            key = line[key_start:key_end]
            if self.flag and _ATTACHED_VALUE_RE.match(key):
                continue  # "-pPASSWORD": a one-letter flag with its value attached, not a key
            strength = _key_strength(key)
            if not strength and self.flag and _normalise_key(key) in _FLAG_SECRET_NAMES:
                strength = 2
            if not strength or key_pattern.fullmatch(key) is None:
                continue
            op = op_pattern.match(line, key_end)
            if op is None:
                continue
            value_match = value_pattern.match(line, op.end())
            if value_match is None:
                continue
            names = value_match.re.groupindex
            group = next(
                g for g in (*_QUOTE_GROUPS, "tq", "bare") if g in names and value_match.start(g) >= 0
            )
            start, end = value_match.span(group)
            if group == "bq" and _FORMAT_FIELD_RE.fullmatch(line[start:end]):
                continue  # Password={4}, Password={password}: a format field
            # Look back a bounded stretch only: a line without spaces must not cost n² here.
            back = max(0, key_start - 256)
            space = max(line.rfind(" ", back, key_start), line.rfind("\t", back, key_start))
            word_start = max(space + 1, back)
            authority = line.find("://", word_start, key_start)
            if authority >= 0 and not any(c in line[authority + 3 : key_start] for c in "/?#&;"):
                continue  # https://gitlab+deploy-token-1:X@host: the URL rules read userinfo
            operator = op.groupdict().get("op") or "="
            if group == "bare":
                end = _bare_value_end(line, key_start, start, end, operator, self.flag)
            done = max(done, end)
            value = line[start:end]
            if start == end or _is_placeholder(value, replacement):
                continue
            if group == "bare" and _NEXT_KEY_RE.match(value):
                continue  # "GITHUB_TOKEN: GITHUB_WORKFLOW:ci.yml": an empty value, then the next key
            if group == "bare" and end < len(line) and line[end] == "(":
                continue  # "pass = project.getProperty('pass')": a call, not a value
            if (
                key_start > 0
                and line[key_start - 1] == ":"
                and "arn:" in line[max(0, key_start - 200) : key_start]
            ):
                continue  # arn:aws:secretsmanager:...:secret:NAME: a resource name
            # $PWD in env dumps is the working directory; credentials=/etc/x a file's path.
            if group == "bare" and _PATH_VALUE_RE.fullmatch(value):
                continue
            if group == "bare" and not self._bare_is_secret(line, key_start, value, operator, strength):
                continue
            if not any(c.isalnum() for c in value):
                continue  # '"auth": {' or 'password: -': punctuation, not a value
            if self.check is not None and not self.check(value):
                continue
            yield start, end

    def _bare_is_secret(self, line: str, key_start: int, value: str, operator: str, strength: int) -> bool:
        """Whether an unquoted value is a secret rather than prose or a flag's next word."""
        if self.flag and (value.lower() in _FLAG_STOP_WORDS or value.startswith("-")):
            return False  # "Using --password via the CLI is insecure"
        if self.flag and _HELP_TEXT_RE.match(line, line.find(value, key_start)):
            return False  # "--ks-pass   KeyStore password (see --ks)": a usage text
        if (
            self.flag
            and _normalise_key(line[key_start:].split(None, 1)[0]).endswith("secret")
            and (_NAME_LIKE_RE.fullmatch(value))
        ):
            return False  # "--ingress-tls-secret web-tls": a Kubernetes Secret's name
        if operator == ":" and _WORD_RE.fullmatch(value):
            # "incorrect password: Permission denied": a word after a key inside a sentence.
            # A bounded look back: copying the line's head per key costs n² on a long line.
            before = line[max(0, key_start - 256) : key_start].rstrip(" \t\"'")
            if before and (before[-1].isalpha() or strength == 1):
                return False
        return not (strength == 1 and operator == ":" and not _looks_random(value))


_NO_PATTERN = re.compile(r"(?!)")
_ATTACHED_VALUE_RE = re.compile(r"-[a-zA-Z][A-Z]")
# A flag's description in a usage text: a capitalised word, then more words of a sentence.
_HELP_TEXT_RE = re.compile(r"[A-Z][A-Za-z]+ [a-z]+(?: [a-z(]|\.|,)")
_NEXT_KEY_RE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+[:=]")
# "key", "value" pairs in a call or a tuple, and user/password positional arguments.
_QUOTED_PAIR_RE = re.compile(
    r"(?P<kq>[\"'])(?P<k>[\w.\-]{1,100})(?P=kq)\s*,\s*(?P<vq>[\"'])(?P<v>[^\"'\r\n]{1,256})(?P=vq)"
)
_CREDENTIAL_CALL_RE = re.compile(
    r"(?:getConnection|HTTPBasicAuth|HTTPDigestAuth|BasicAuth|EncodedAuthentication|Authentication|PDO"
    r"|__construct|mysqli_connect|mysqli|NewConn|auth\s*=\s*)\s*\(\s*"
    r"(?:[\"'][^\"'\r\n]*[\"']\s*,\s*){1,2}[\"'](?P<v>[^\"'\r\n]{1,256})[\"']"
)


_OBJECT_VALUE_RE = re.compile(r"\"(?P<k>[\w.\-]{1,100})\"\s*:\s*\{\s*\"value\"\s*:\s*\"(?P<v>[^\"\r\n]*)\"")


def _object_value_spans(line: str) -> Iterator[tuple[int, int]]:
    """``"db_password": {"value": "X", ...}`` (Terraform outputs, Helm values): the object of a
    sensitive key holds its secret under ``value``."""
    for match in _OBJECT_VALUE_RE.finditer(line):
        if is_sensitive_key(match.group("k")):
            yield match.span("v")


_CALL_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "connect", "pdo")


def _call_argument_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """``("fs.s3a.secret.key", "X")`` with a sensitive key, and the password argument of calls
    that take (user, password) or (url, user, password)."""
    if "," not in line or not any(word in lowered for word in _CALL_WORDS):
        return
    position = 0
    while (pair := _QUOTED_PAIR_RE.search(line, position)) is not None:
        # Pairs overlap ("'-U', 'bob', '--password', 'X'"): the next search starts at this value.
        position = pair.start("vq")
        # Bounded windows: copying the line's head or tail per pair would cost n² on a long line.
        before = line[max(0, pair.start() - 256) : pair.start()].rstrip()
        after = line[pair.end() : pair.end() + 256].lstrip()
        if before.endswith(":") or after.startswith(":"):
            continue  # '"a": "ACCESS_TOKEN", "token_type": ...': JSON keys and values, not a pair
        value = pair.group("v")
        if is_sensitive_key(pair.group("k")) and value.count(" ") < 3 and not value.startswith("-"):
            yield pair.span("v")  # a value of 4 words or more is a description, not a secret
    for call in _CREDENTIAL_CALL_RE.finditer(line):
        yield call.span("v")


# "the password was 'expired'": a short lower-case word is prose.
_PROSE_WORD_RE = re.compile(r"[a-z]{1,10}")
_LINKED_QUOTED_RE = re.compile(
    r"(?<![\w.\-])(?P<k>[A-Za-z_][\w.\-]{0,100})[\"']?\.?[ \t]+"
    r"(?:(?:was|is|from|to|as|changed to|set to|reset to|now)[ \t]+|cannot convert the[ \t]+)"
    r"(?P<q>[\"'])(?P<v>[^\"'\r\n]{4,256})(?P=q)",
    re.IGNORECASE,
)
# ("root", "X"), "sa", "X": a well-known account name, then its password as the next argument.
_ADMIN_PAIR_RE = re.compile(
    r"(?P<uq>[\"'])(?:root|admin|administrator|sa|postgres|sysdba|system|sys|dbadmin|superuser)(?P=uq)"
    r"\s*,\s*(?P<vq>[\"'])(?P<v>[^\"'\s]{1,256})(?P=vq)"
)
_SPACED_QUOTED_RE = re.compile(
    r"(?<![\w.\-])(?P<k>[A-Za-z_][\w.\-]{0,100})[ \t]+(?P<q>[\"'])(?P<v>[^\"'\r\n]{4,256})(?P=q)"
)


def _spaced_quoted_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """``KEY 'value'`` with a sensitive KEY: ``SECRET_ACCESS_KEY '...'``, ``and password "..."``,
    also across a linking word: ``Changed Password from 'X'``, ``parameter 'Password'. Cannot
    convert the "X" value``."""
    for match in _SPACED_QUOTED_RE.finditer(line):
        key = match.group("k")
        if match.start() > 0 and line[match.start() - 1] == "\\" and key[0] in "nrt":
            key = key[1:]  # "\nSecret 'x'" in a JSON-encoded log: the key is "Secret"
        if key and _key_strength(key) == 2:
            yield match.span("v")
    for match in _LINKED_QUOTED_RE.finditer(line):
        value = match.group("v")
        if _key_strength(match.group("k")) != 2 or _is_placeholder(value) or _PROSE_WORD_RE.fullmatch(value):
            continue
        yield match.span("v")


def _admin_pair_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """``connect(c, "root", "X")``: the quoted argument after a well-known account name."""
    for match in _ADMIN_PAIR_RE.finditer(line):
        value = match.group("v")
        if len(value) >= 4 and not _NAME_LIKE_RE.fullmatch(value) and not _PATH_VALUE_RE.fullmatch(value):
            yield match.span("v")


def _query_secret(value: str) -> bool:
    """A ``?code=`` / ``?key=`` value that looks generated (not ``?code=python``)."""
    return _mixed(value) or (any(c in value for c in "/+-_%") and any(c.isdigit() for c in value))


_WEBHOOK_PATH_RE = re.compile(r"webhooks?/(?P<path>[\w\-/]{1,512})", re.IGNORECASE)


def _webhook_path_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """Generated segments of a webhook URL's path: upper, lower and digits, 16 characters or more
    (ids of hex or words stay)."""
    for match in _WEBHOOK_PATH_RE.finditer(line):
        offset = match.start("path")
        for segment in match.group("path").split("/"):
            if len(segment) >= 16 and _mixed(segment):
                yield offset, offset + len(segment)
            offset += len(segment) + 1


# A row of a two-column table ("Key   Value", "[11]  db_root_password   X"): a key, two or more
# blanks, one value and nothing else on the line.
_TABLE_ROW_RE = re.compile(
    r"[ \t]*(?:\[\d{1,4}\][ \t]+)?(?P<k>[A-Za-z_][\w.\-]{0,100})[ \t]{2,}(?P<v>[^\s\"'`]{4,256})[ \t]*\r?"
)


def _table_row_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """The value column of a row whose key names a password (any value) or a token or secret
    (a generated-looking value): ``vault token lookup``, installer summaries, ``env | column``."""
    row = _TABLE_ROW_RE.fullmatch(line)
    if row is None:
        return
    strength = _key_strength(row.group("k"))
    value = row.group("v")
    if strength == 2 or (strength == 1 and _looks_random(value)):
        if not _is_placeholder(value) and not _PATH_VALUE_RE.fullmatch(value):
            yield row.span("v")


_ANNOUNCE_WORD_RE = re.compile(r"\b(?:password|passphrase|passcode)\b")


def _announced_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """A password announced at the end of its line: "A temporary password is provided for this
    session: X", "Generated admin passphrase: **X**". Only the line's last word is read."""
    body = line.rstrip()
    space = max(body.rfind(" "), body.rfind("\t"))
    before = body[:space].rstrip()
    if space < 0 or not before.endswith(":"):
        return
    if _ANNOUNCE_WORD_RE.search(lowered, max(0, len(before) - 120), len(before)) is None:
        return
    start, end = space + 1, len(body)
    while start < end and body[start] in "*\"'`":
        start += 1
    while end > start and body[end - 1] in "*\"'`.":
        end -= 1
    value = body[start:end]
    if any(c in value for c in "[]{}()\\'\"<>,;"):
        return  # a quoted or bracketed value: the key-value rules read it
    if len(value) >= 6 and (_looks_random(value) or _spaced_secret(value)) and not _is_placeholder(value):
        if not _PATH_VALUE_RE.fullmatch(value) and "://" not in value:
            yield start, end


@dataclass(frozen=True)
class FinderRule(SecretRule):
    """A rule whose spans a function finds (a command's flags, a cookie header's pairs...).

    :param finder: ``(line, lowered) -> (start, end)`` spans of secret values in the line; the
        placeholder test and :attr:`check` are applied to each.
    """

    finder: Callable[[str, str], Iterable[tuple[int, int]]] | None = None

    def spans(self, line: str, lowered: str, replacement: str) -> Iterator[tuple[int, int]]:
        """Yield ``(start, end)`` of each secret value in ``line``.

        :param line: one line of text.
        :param lowered: the same line in lower case, with the same length.
        :param replacement: the scrubber's replacement, never treated as a secret.
        """
        if self.finder is None or (self.requires is not None and self.requires.search(line) is None):
            return
        for start, end in self.finder(line, lowered):
            value = line[start:end]
            if start >= end or _is_placeholder(value, replacement):
                continue
            if self.check is not None and not self.check(value):
                continue
            yield start, end


# --------------------------------------------------------------------------------------------
# Context rules that need more than one regex: commands, cookies, markup, URLs
# --------------------------------------------------------------------------------------------

_SHELL_STOPS = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "\\"})
_TOKEN_RE = re.compile(r"\S+")
# How many words after a command name are read for its flags.
_MAX_COMMAND_WORDS = 48
_QUOTE_CHARS = "\"'`"
_COMMAND_RE = re.compile(
    r"(?<![\w\-])(?:[\w.\-~]*/)*(?P<cmd>mysql\w*|mariadb\w*|sshpass|redis-cli|docker|podman|nerdctl|buildah"
    r"|skopeo|helm|oras|crane|regctl|az|sqlcmd|bcp|osql|isql|htpasswd|openssl|zip|unzip|7za?|7zr|rar"
    r"|unrar|rabbitmqctl|vault|kubectl|oc|wpa_passphrase|mkpasswd|ldap\w+|mongo\w*|keytool|jarsigner"
    r"|smbclient|rpcclient|curl|aws|gh|net|sqlplus|rman|expdp|impdp|cqlsh|neo4j-admin|npm|yarn|pnpm|git|mosquitto_\w+"
    r"|ssh-keygen|xfreerdp|rdesktop|lftp|twine|beeline|useradd|usermod|setx|dotnet|nmcli|rclone|mc|psql|nuget|ansible-vault|choco)"
    r"(?:\.exe)?(?=[\s\"'`;)|&]|$)"
)
_COMMAND_TRIGGERS = (
    "mysql", "mariadb", "sshpass", "redis-cli", " login", "sqlcmd", "bcp ", "osql", "isql", "htpasswd",
    "pass:", "zip", "7z", "rar ", "rabbitmqctl", "vault", "--from-literal", "wpa_passphrase", "mkpasswd",
    "ldap", "mongo", "keytool", "jarsigner", "smbclient", "rpcclient", "--oauth2-bearer", "--cookie",
    "curl", "configure set", "secret set", "net user", "sqlplus", "rman", "expdp", "impdp", "cqlsh",
    "neo4j-admin", " set ", "mosquitto_", "openssl", "ssh-keygen", "rdp", "rdesktop", "lftp", "twine",
    "beeline", "useradd", "usermod", "setx", "nmcli", "rclone", "creds", "nuget", "encrypt_string", "choco",
)  # fmt: skip
# Per command: flags whose next word is the password, and flags with the password attached (-pX).
_SEPARATE_FLAGS: dict[str, frozenset[str]] = {
    "sshpass": frozenset({"-p"}),
    "redis-cli": frozenset({"-a", "--pass"}),
    "login": frozenset({"-p", "--password"}),
    "sqlcmd": frozenset({"-P"}),
    "zip": frozenset({"-P", "--password"}),
    "ldap": frozenset({"-w"}),
    "mongo": frozenset({"-p", "--password"}),
    "cqlsh": frozenset({"-p", "--password"}),
    "mosquitto": frozenset({"-P", "--pw"}),
    "keytool": frozenset(
        {"-storepass", "-keypass", "-srcstorepass", "-deststorepass", "-srckeypass", "-destkeypass", "-new"}
    ),
    "smbclient": frozenset({"--password"}),
    "openssl": frozenset({"-k"}),
    "curl": frozenset({"--oauth2-bearer"}),
    "gh": frozenset({"--body", "-b"}),
    "ssh-keygen": frozenset({"-N", "-P"}),
    "rdesktop": frozenset({"-p"}),
    "twine": frozenset({"-p", "--password"}),
    "beeline": frozenset({"-p"}),
    "useradd": frozenset({"-p", "--password"}),
    "nmcli": frozenset({"password", "wifi-sec.psk", "802-11-wireless-security.psk"}),
    "choco": frozenset({"-k", "--key", "--apikey", "--api-key"}),
}
# Flags whose next word is user:password (skopeo --dest-creds, podman --creds) or user,password.
_CREDENTIAL_FLAGS = frozenset({"--creds", "--src-creds", "--dest-creds", "--registry-creds"})
_ATTACHED_FLAGS: dict[str, tuple[str, ...]] = {
    "mysql": ("-p",),
    "sshpass": ("-p",),
    "redis-cli": ("-a",),
    "sqlcmd": ("-P",),
    "zip": ("-P",),
    "7z": ("-p",),
    "ldap": ("-w",),
}
_LOGIN_COMMANDS = frozenset(
    {"docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "regctl", "az"}
)


def _command_family(cmd: str) -> str:
    """The flag table a command name uses (``mysqldump`` reads ``mysql``'s)."""
    for prefix, family in (
        ("mysql", "mysql"), ("mariadb", "mysql"), ("ldap", "ldap"), ("mongo", "mongo"),
        ("jarsigner", "keytool"), ("rpcclient", "smbclient"), ("unzip", "zip"), ("7z", "7z"),
        ("unrar", "7z"), ("rar", "7z"), ("bcp", "sqlcmd"), ("osql", "sqlcmd"), ("isql", "sqlcmd"),
        ("mosquitto", "mosquitto"), ("usermod", "useradd"), ("xfreerdp", "xfreerdp"),
    ):  # fmt: skip
        if cmd.startswith(prefix):
            return family
    return cmd


def _unquoted(line: str, start: int, end: int) -> tuple[int, int]:
    """The span of a word without the quotes around it (``'secret'`` -> ``secret``)."""
    # ['mysql', '-p', 'X']: a word of a Python list ("[secure]" keeps its bracket).
    while end > start and (
        line[end - 1] == ","
        or (line[end - 1] == "]" and line.count("[", start, end) < line.count("]", start, end))
    ):
        end -= 1
    if end - start >= 2 and line[start] in _QUOTE_CHARS and line[end - 1] == line[start]:
        return start + 1, end - 1
    if end > start and line[start] in _QUOTE_CHARS:
        start += 1
    while end > start and line[end - 1] in _QUOTE_CHARS + ");":
        end -= 1
    return start, end


def _flag_word(text: str) -> str:
    """A command word without quotes and list punctuation (``'-p',`` -> ``-p``)."""
    return text.strip("\"'`[],")


def _words_after(line: str, lowered: str, position: int) -> list[tuple[int, int]]:
    """The words of one command after ``position``, up to a shell separator, a backtick (the end
    of an inline code span) or the next command (bounded); a quoted word with spaces
    (``-P "two words"``) is one word."""
    words: list[tuple[int, int]] = []
    tokens = _TOKEN_RE.finditer(line, position)
    for token in tokens:
        start, end = token.span()
        text = token.group()
        if text in _SHELL_STOPS or len(words) >= _MAX_COMMAND_WORDS or text.startswith("`"):
            break
        inner = start + len(text) - len(text.lstrip("\"'("))
        command = _COMMAND_RE.match(lowered, inner)
        if command is not None and command.end() >= end - 1:
            break  # "sshpass -p X mysql -pY", "bash -c \"mysql -pY\"": mysql's flags are its own
        if "`" in text:
            words.append((start, end))
            break
        quote = next((c for c in text if c in "\"'"), None)
        if quote and text.count(quote) == 1:
            for _, more in zip(range(8), tokens, strict=False):  # the quote closes in a later token
                end = more.end()
                if quote in more.group():
                    break
        words.append((start, end))
    return words


def _wrapper_words(words: list[tuple[int, int]], texts: list[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """The words of ``sshpass`` itself: up to the command it runs (``sshpass -p X ssh -p 22``)."""
    index = 0
    while index < len(texts):
        flag = _flag_word(texts[index])
        if not flag.startswith("-"):
            break
        index += 2 if flag in ("-p", "-f", "-d", "-P") else 1
    return words[:index], texts[:index]


def _command_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """Passwords given to well-known commands: ``mysql -pX``, ``sshpass -p X``, ``redis-cli -a X``,
    ``docker login -p X``, ``sqlcmd -P X``, ``htpasswd -b f u X``, ``openssl ... pass:X``,
    ``rabbitmqctl add_user u X``, ``vault login X``, ``kubectl ... --from-literal=k=X``..."""
    position = 0
    while True:
        command = _COMMAND_RE.search(lowered, position)
        if command is None:
            return
        cmd = command.group("cmd")
        family = _command_family(cmd)
        words = _words_after(line, lowered, command.end())
        # A command's words end at the next command, so each word is read for one command only.
        position = command.end()
        texts = [line[a:b] for a, b in words]
        if cmd in _LOGIN_COMMANDS:
            if "login" not in (t.lower() for t in texts[:4]):
                continue
            family = "login"
        if family == "sshpass":
            words, texts = _wrapper_words(words, texts)
        separate = _SEPARATE_FLAGS.get(family, frozenset())
        attached = _ATTACHED_FLAGS.get(family, ())
        for index, (text, (start, end)) in enumerate(zip(texts, words, strict=True)):
            bare = text.lstrip(_QUOTE_CHARS + "[")
            offset = start + len(text) - len(bare)
            flag = _flag_word(text)
            if (flag in separate or flag in _CREDENTIAL_FLAGS) and index + 1 < len(words):
                value = _unquoted(line, *words[index + 1])
                if flag in _CREDENTIAL_FLAGS:
                    colon = line.find(":", *value)
                    value = (colon + 1, value[1]) if colon >= 0 else (value[1], value[1])
                yield value
            elif flag.startswith(tuple(f"{c}=" for c in _CREDENTIAL_FLAGS)):
                colon = line.find(":", start, end)
                if colon >= 0:
                    yield _unquoted(line, colon + 1, end)
            elif family == "xfreerdp" and flag.lower().startswith("/p:"):
                yield _unquoted(line, offset + 3, end)
            elif family == "lftp" and flag == "-u" and index + 1 < len(words):
                value = _unquoted(line, *words[index + 1])
                comma = line.find(",", *value)
                if comma >= 0:
                    yield comma + 1, value[1]
            elif attached and flag.startswith(attached) and len(flag) > 2 and not flag.startswith("--"):
                value = _unquoted(line, offset + 2, end)
                if family != "mysql" or not re.fullmatch(r"\d+:\d+", line[value[0] : value[1]]):
                    yield value
            elif bare.lower().startswith("pass:") and family == "openssl":
                yield _unquoted(line, offset + 5, end)
            elif family in ("kubectl", "oc") and bare.startswith("--from-literal="):
                equals = line.find("=", offset + len("--from-literal="), end)
                if equals >= 0:
                    yield _unquoted(line, equals + 1, end)
            elif family == "smbclient" and bare.startswith("-U") and "%" in text:
                yield _unquoted(line, line.find("%", start, end) + 1, end)
            elif family == "smbclient" and flag in ("-U", "--user") and index + 1 < len(words):
                value = _unquoted(line, *words[index + 1])
                percent = line.find("%", *value)
                if percent >= 0:
                    yield percent + 1, value[1]
        yield from _positional_spans(family, line, words, texts)


# An app-specific password (Apple, Google): four groups of four letters.
_APP_PASSWORD_RE = re.compile(r"[a-z]{4}(?:-[a-z]{4}){3}")
_USER_FLAGS = frozenset({"-u", "-U", "--user", "--username", "--login", "-l", "--usr"})
_PASS_FLAGS = frozenset({"-p", "-P", "-w", "--pass", "--pw", "--passwd", "--pwd"})
_PORT_LIKE_RE = re.compile(r"\d{1,5}(?::\d{1,5})*(?:/(?:tcp|udp))?")


def _user_pass_flag_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """``tool -u USER -p PASS`` for a tool without a flag table of its own: a short password flag
    next to a user flag (a port, ``-p 5432``, or a plain word, ``-p mydb``, is not taken)."""
    if "mysql" in lowered or "mariadb" in lowered:
        return  # mysql's -p alone prompts: its own table decides
    words = [(m.start(), m.end()) for m in islice(_TOKEN_RE.finditer(line), 256)]
    texts = [line[a:b] for a, b in words]
    if not any(_flag_word(t) in _USER_FLAGS for t in texts):
        return
    for index, text in enumerate(texts):
        flag = _flag_word(text)
        if flag in _PASS_FLAGS and index + 1 < len(texts):
            start, end = _unquoted(line, *words[index + 1])
        elif flag[:2] in ("-p", "-P") and len(flag) > 2 and not flag.startswith("--"):
            start, end = _unquoted(line, words[index][0] + text.index(flag) + 2, words[index][1])
        else:
            continue
        value = line[start:end]
        if (
            not value
            or value.startswith("-")
            or _PORT_LIKE_RE.fullmatch(value)
            or (
                _NAME_LIKE_RE.fullmatch(value)
                and not _spaced_secret(value)
                and not _APP_PASSWORD_RE.fullmatch(value)
            )
        ):
            continue
        yield start, end


def _positional_spans(
    family: str, line: str, words: list[tuple[int, int]], texts: list[str]
) -> Iterator[tuple[int, int]]:
    """Passwords given as a positional word (``htpasswd -b FILE USER PASS``, ``net user U P``)."""
    plain = [i for i, t in enumerate(texts) if not t.lstrip(_QUOTE_CHARS).startswith("-")]
    lowered = [t.lower().strip(_QUOTE_CHARS) for t in texts]
    target: int | None = None
    if family == "htpasswd":
        flags = "".join(t[1:] for t in texts if t.startswith("-"))
        # -C takes the bcrypt cost ("htpasswd -nbBC 10 user X"): not a positional word.
        costs = {i + 1 for i, t in enumerate(texts) if t.startswith("-") and t.endswith("C")}
        plain = [i for i in plain if i not in costs]
        if "b" in flags:
            wanted = 2 if "n" in flags else 3
            if len(plain) >= wanted:
                target = plain[wanted - 1]
    elif family == "rabbitmqctl":
        for sub in ("add_user", "change_password", "authenticate_user"):
            if sub in lowered:
                after = [i for i in plain if i > lowered.index(sub)]
                target = after[1] if len(after) >= 2 else None
    elif family == "vault" and "login" in lowered:
        after = [i for i in plain if i > lowered.index("login") and "=" not in texts[i]]
        target = after[0] if after else None
    elif family == "wpa_passphrase" and len(plain) >= 2:
        yield _unquoted(line, words[plain[1]][0], words[plain[-1]][1])
    elif family == "mkpasswd":
        valued = {"-m", "--method", "-S", "--salt", "-R", "--rounds", "-P", "--password-fd"}
        free = [i for i in plain if i == 0 or texts[i - 1] not in valued]
        target = free[0] if free else None
    elif family == "aws" and "set" in lowered and lowered[:1] == ["configure"]:
        key = lowered.index("set") + 1
        if key + 1 < len(texts) and is_sensitive_key(texts[key]):
            target = key + 1
    elif family == "gh" and lowered[:2] == ["secret", "set"] and len(plain) >= 4:
        target = plain[3] if texts[plain[3] - 1] not in ("--body", "-b") else None
    elif family in ("sqlplus", "rman", "expdp", "impdp") and plain:
        # sqlplus scott/tiger@orcl: the password sits between "/" and "@" (or the word's end).
        first = texts[plain[0]]
        slash = first.find("/")
        if slash > 0 and not first.startswith("/"):
            base = words[plain[0]][0]
            if first[slash + 1 : slash + 2] in ('"', "'"):  # scott/"p@ss"@orcl
                close = first.find(first[slash + 1], slash + 2)
                if close > 0:
                    yield base + slash + 2, base + close
            else:  # the connect identifier follows the last "@": a password may hold one
                at = first.rfind("@", slash)
                yield base + slash + 1, (base + at) if at > 0 else words[plain[0]][1]
    elif family == "mc" and lowered[:2] in (["alias", "set"], ["config", "host"]):
        # mc alias set NAME URL ACCESS_KEY SECRET_KEY
        after = [i for i in plain if i > 1 and lowered[i] != "add"]
        target = after[3] if len(after) >= 4 and not any("$(" in texts[i] for i in after) else None
    elif family == "ansible-vault" and "encrypt_string" in lowered:
        # ansible-vault encrypt_string 'X' --name 'db_pass': the first word that is no flag's value
        valued = {"--name", "-n", "--vault-id", "--vault-password-file", "--output", "--encrypt-vault-id"}
        after = [i for i in plain if i > lowered.index("encrypt_string") and texts[i - 1] not in valued]
        target = after[0] if after else None
    elif family == "nuget" and lowered[:1] == ["push"] and len(plain) >= 3:
        target = plain[2]  # nuget push PACKAGE API_KEY
    elif family == "neo4j-admin" and "set-initial-password" in lowered:
        after = [i for i in plain if i > lowered.index("set-initial-password")]
        target = after[0] if after else None
    elif family in ("npm", "yarn", "pnpm", "git") and "set" in lowered:
        key = lowered.index("set") + 1
        name = texts[key].rsplit(":", 1)[-1].rsplit("/", 1)[-1] if key < len(texts) else ""
        if key + 1 < len(texts) and is_sensitive_key(name):
            target = key + 1
    elif family == "net" and lowered[:1] == ["user"] and len(plain) >= 3:
        target = plain[2] if texts[plain[2]] not in ("*",) and not texts[plain[2]].startswith("/") else None
    if target is not None:
        yield _unquoted(line, *words[target])


_INLINE_DATA_RE = re.compile(r"\"(?P<k>data|stringData)\"\s*:\s*\{(?P<body>[^{}]{0,65536})\}")
_INLINE_ENTRY_RE = re.compile(r"\"[\w.\-]{1,253}\"\s*:\s*\"(?P<v>[^\"]*)\"")


def _inline_data_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """``"data":{"password":"cGFzcw=="}`` in a manifest printed as one line of JSON."""
    for block in _INLINE_DATA_RE.finditer(line):
        string_data = block.group("k") == "stringData"
        for entry in _INLINE_ENTRY_RE.finditer(line, block.start("body"), block.end("body")):
            if _secret_data_value(entry.group("v"), string_data):
                yield entry.span("v")


_PIPED_RE = re.compile(
    r"\b(?:echo|printf)[ \t]+(?:-[neE]{1,3}[ \t]+)*(?:[\"']%s(?:\\n)?[\"'][ \t]+)?"
    r"(?P<q>[\"']?)(?P<v>[^\s\"'|$`]{4,256})(?P=q)[ \t]*\|[ \t]*(?:[\w.\-~]*/)*"
    r"(?P<to>(?:docker|podman|helm|nerdctl|oras|buildah|skopeo)[ \t]+(?:registry[ \t]+)?login\b"
    r"|sudo\b[^|]*?[ \t]-\w*S|chpasswd\b|passwd\b[^|]*--stdin|base64\b|openssl\b|cryptsetup\b"
    r"|vault\b|gpg\b[^|]*--passphrase-fd|kubectl\b[^|]*secret|vncpasswd\b|smbpasswd\b|x11vnc\b[^|]*-storepasswd)",
)


def _piped_secret_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """A value piped into something that takes a secret on stdin: ``echo X | docker login
    --password-stdin``, ``| sudo -S``, ``| passwd --stdin``, ``| base64`` (encoding a credential
    for a Kubernetes Secret); ``echo user:X | chpasswd`` keeps the user."""
    for match in _PIPED_RE.finditer(line):
        start, end = match.span("v")
        if match.group("to").startswith("chpasswd"):
            colon = line.find(":", start, end)
            if colon < 0:
                continue
            start = colon + 1
        yield start, end


_COOKIE_HEADER_RE = re.compile(
    r"(?<![\w\-])(?P<name>set-cookie|cookie)[\"']?\s*(?:[:=]|,\s*[\"'])\s*[\"']?", re.IGNORECASE
)
_COOKIE_PAIR_RE = re.compile(r"\s*(?P<k>[^=;,\s\"']+)=(?P<v>[^;\s\"']*)")
_COOKIE_ATTRIBUTES = frozenset(
    {"path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority", "partitioned"}
)


def _cookie_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """Cookie values: every pair of a ``Cookie:`` header or ``curl -b``, the first pair of a
    ``Set-Cookie:`` (the rest are attributes such as ``Path=/``)."""
    for header in _COOKIE_HEADER_RE.finditer(line):
        position = header.end()
        first = True
        for _ in range(64):
            pair = _COOKIE_PAIR_RE.match(line, position)
            if pair is None:
                break
            name = pair.group("k").lower()
            if name not in _COOKIE_ATTRIBUTES and (first or header.group("name").lower() == "cookie"):
                if len(pair.group("v")) >= 4:
                    yield pair.span("v")
            first = False
            position = pair.end()
            if line[position : position + 1] != ";":
                break
            position += 1
    if "curl" not in lowered and "--cookie" not in lowered:
        return  # "-b" is curl's; ldapsearch -b is a search base
    for flag in re.finditer(r"(?<!\S)(?:-b|--cookie)\s+[\"']?", line):
        position = flag.end()
        for _ in range(64):
            pair = _COOKIE_PAIR_RE.match(line, position)
            if pair is None:
                break
            if len(pair.group("v")) >= 4:
                yield pair.span("v")
            position = pair.end()
            if line[position : position + 1] != ";":
                break
            position += 1


_MARKUP_RE = re.compile(r"<(?P<tag>[A-Za-z_][\w:.\-]{0,63})>(?P<v>[^<\r\n]{1,512})</(?P=tag)>")
_HTML_FIELD_RE = re.compile(
    r"(?:type|name|id)=[\"'](?P<k>[^\"'<>]{1,64})[\"'][^<>]{0,200}?\b(?:value|content)=[\"'](?P<v>[^\"'<>]*)[\"']",
    re.IGNORECASE,
)


def _markup_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """``<password>X</password>``, ``<SignatureProvided>X</...>``, ``<input type="password" value="X">``,
    ``<meta name="api-key" content="X">``."""
    for element in _MARKUP_RE.finditer(line):
        if is_sensitive_key(element.group("tag").rsplit(":", 1)[-1]):
            yield element.span("v")
    for field in _HTML_FIELD_RE.finditer(line):
        if is_sensitive_key(field.group("k")):
            yield field.span("v")


# scheme://user:password@host: the password is anything up to the last "@" that is followed by a
# host (and, when the password has a space, by a port or a path), within the line.
_URL_USERINFO_RE = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,30})://(?P<user>[^\s:/?#\"'<>]*):"
)
_HOST_AFTER_RE = re.compile(r"@(?P<host>\[?[A-Za-z0-9][A-Za-z0-9.\-:\]]*)(?P<after>[:/?#\s\"'<>)\]]|$)")
_MAX_URL_PASSWORD = 4096


def _url_password_spans(line: str, lowered: str) -> Iterator[tuple[int, int]]:
    """URL passwords with any characters (``#``, ``?``, ``/``, quotes, ``@``, even a space).

    The password runs to the last ``@`` before the next whitespace that is followed by a host;
    a password with a space needs a port or a path after its host, and ``host:8080/x?a=b@c`` is a
    port, not a password. The at signs, blanks and schemes of the line are found once and looked
    up by bisection, so a line of a million URLs costs n log n.
    """
    urls = _URL_USERINFO_RE.finditer(line)
    at_positions: list[int] = []
    blank_after: list[bool] = []
    for host in _HOST_AFTER_RE.finditer(line):
        at_positions.append(host.start())
        blank_after.append(host.group("after") in (" ", "\t"))
    blanks = [m.start() for m in _BLANK_RE.finditer(line)]
    schemes = [m.start() for m in _SCHEME_SEP_RE.finditer(line)]
    for url in urls:
        start = url.end()
        limit = start + _MAX_URL_PASSWORD
        following = bisect.bisect_left(schemes, start)
        if following < len(schemes):
            limit = min(limit, schemes[following])
        blank_index = bisect.bisect_left(blanks, start)
        blank = blanks[blank_index] if blank_index < len(blanks) else len(line)
        best = -1
        last = bisect.bisect_left(at_positions, min(blank, limit)) - 1
        if last >= 0 and at_positions[last] > start:
            best = at_positions[last]
        else:
            first = bisect.bisect_left(at_positions, blank)
            if first < len(at_positions) and at_positions[first] < limit and not blank_after[first]:
                spaces = bisect.bisect_left(blanks, at_positions[first]) - blank_index
                if spaces <= 3:
                    best = at_positions[first]
        if best > start and not _PORT_RE.fullmatch(line[start:best]):
            yield start, best


_BLANK_RE = re.compile(r"[ \t]")
_SCHEME_SEP_RE = re.compile(r"://")
_PORT_RE = re.compile(r"\d{1,5}[/?#\s].*")
_URL_USERINFO_KEY_RE = re.compile(r"://(?P<v>[A-Za-z0-9_\-]{8,}|[0-9a-f]{32}(?::[0-9a-f]{32})?)@")


def _ds(pattern: re.Pattern[str], *, tail: str = "") -> re.Pattern[str]:
    """Wrap a detect-secrets denylist regex so it matches whole tokens only.

    detect-secrets scans source files and accepts a token inside a longer word; in logs that
    turns random identifiers into hits, so the token must end at a word edge (the start edge is
    the rule's ``not_after``).

    :param pattern: a compiled regex from a detect-secrets plugin's ``denylist``.
    :param tail: extra characters the token may continue with (Stripe keys grew longer).
    """
    return re.compile(rf"(?:{pattern.pattern}){tail}(?![A-Za-z0-9_])", pattern.flags)


def _ds_lowered(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """Compile a caseless detect-secrets regex without ``re.IGNORECASE``, for lower-cased text.

    :param pattern: a compiled regex from a detect-secrets plugin's ``denylist``.
    """
    return re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE)


_AWS_KEY_ID_RE = _ds(AWSKeyDetector.denylist[0])
# A double-, single-, backslash-escaped (once or more: JSON in JSON) or HTML-escaped double-quoted
# value, as groups "dq", "sq", "eq" and "hq". Loops are unrolled ("a*(?:\\.a*)*", not "(?:a|\\.)*")
# so that a 4 MB value costs no backtracking state per character.
_QUOTED = (
    r""""(?P<dq>[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*)"|'(?P<sq>[^'\\\r\n]*(?:\\.[^'\\\r\n]*)*)'"""
    r"""|\\+"(?P<eq>[^\\"\r\n]*(?:\\+(?!")[^\\"\r\n]*)*)\\+"|&quot;(?P<hq>[^&\r\n]*(?:&(?!quot;)[^&\r\n]*)*)&quot;"""
    r"""|%22(?P<uq>[^%\s]*(?:%(?!22)[^%\s]*)*)%22|\{(?P<bq>[^{}\r\n]*)\}(?=[;\s]|$)"""
)
_QUOTE_GROUPS = ("dq", "sq", "eq", "hq", "uq", "bq")
# A backslash, unless it starts an escape of a JSON-encoded log ("\n", "\t", '\"'): the value
# ends there, or "Bearer X\nAuthorization: Y" in a JSON string would hide the second header.
_NOT_ESCAPE = r"\\(?![nrt\"])"
_GITLAB_TRIGGERS = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-", "glptt-")
_GITLAB_TRIGGERS += ("glagent-", "gloas-")
_KV_TRIGGERS = ("pass", "pw", "secret", "token", "key", "contrase", "signature", "sess", "credential", "psk")
_KV_TRIGGERS += ("dockerc", "auth")
_KV_WORDS_RE = re.compile("|".join(_KV_TRIGGERS))

#: The format rules, in priority order (earlier rules name a span when two find the same one).
RULES: tuple[SecretRule, ...] = (
    # ---- cloud and SaaS tokens ---------------------------------------------------------------
    SecretRule(
        "aws_access_key",
        ("akia", "asia", "abia", "acca", "a3t"),
        _AWS_KEY_ID_RE,
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:AWSKeyDetector",
    ),
    SecretRule(
        "aws_secret_key",
        ("aws",),
        _ds_lowered(AWSKeyDetector.denylist[1]),
        groups=(1,),
        lowered=True,
        origin="detect-secrets:AWSKeyDetector",
    ),
    # A 40-character base64 word next to an access key id (CSV exports, `aws configure` echoes).
    SecretRule(
        "aws_secret_key",
        ("akia", "asia"),
        re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        check=_mixed,
        requires=_AWS_KEY_ID_RE,
    ),
    # An S3-compatible key pair (MinIO, Ceph, Wasabi): a 20-character upper-case id, then a
    # 40-character base64 secret.
    SecretRule(
        "aws_secret_key",
        ("re:\\b[A-Z0-9]{20}\\s",),
        re.compile(
            r"(?<![A-Za-z0-9/+=])[A-Z0-9]{20}[ \t,;:|]+[\"']?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        groups=("v",),
        check=_mixed,
    ),
    SecretRule(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        _ds(GitHubTokenDetector.denylist[0]),
        # The prefix is distinctive: "\033[0;32mghu_..." (a colour code pasted as text) still counts.
        not_after=frozenset("_"),
        origin="detect-secrets:GitHubTokenDetector",
    ),
    SecretRule(
        "github_token", ("github_pat_",), re.compile(r"github_pat_[A-Za-z0-9_]{22,}"), not_after=_TOKEN_EDGE
    ),
    *(
        SecretRule(
            "gitlab_token",
            _GITLAB_TRIGGERS,
            _ds(pattern),
            not_after=_TOKEN_EDGE,
            origin="detect-secrets:GitLabTokenDetector",
        )
        for pattern in GitLabTokenDetector.denylist
    ),
    SecretRule(
        "slack_token",
        ("xox",),
        _ds(_ds_lowered(SlackDetector.denylist[0])),
        not_after=_TOKEN_EDGE,
        lowered=True,
        origin="detect-secrets:SlackDetector",
    ),
    SecretRule(
        "slack_token",
        ("xapp-", "xoxe-"),
        re.compile(r"(?:xapp|xoxe)-\d-[A-Za-z0-9-]{10,}"),
        not_after=_TOKEN_EDGE,
    ),
    # detect-secrets' SlackDetector matches the whole webhook URL; keep the host visible.
    SecretRule(
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>T[A-Za-z0-9_]+/[A-Za-z0-9_/]+)"),
        groups=("v",),
    ),
    SecretRule(
        "stripe_key",
        ("sk_live_", "rk_live_"),
        _ds(StripeDetector.denylist[0], tail="[0-9a-zA-Z]*"),
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:StripeDetector",
    ),
    SecretRule(
        "stripe_key",
        ("sk_test_", "rk_test_", "whsec_"),
        re.compile(r"(?:[sr]k_test|whsec)_[0-9a-zA-Z]{24,}"),
        not_after=_TOKEN_EDGE,
    ),
    SecretRule(
        "openai_key",
        ("sk-",),
        _ds(OpenAIDetector.denylist[0]),
        not_after=_TOKEN_EDGE | frozenset("-"),
        origin="detect-secrets:OpenAIDetector",
    ),
    # OpenAI project/service keys and Anthropic keys without the T3BlbkFJ marker.
    SecretRule(
        "openai_key",
        ("sk-",),
        re.compile(r"sk-(?:proj-|svcacct-|admin-|ant-[a-z]+\d*-)?[A-Za-z0-9_\-]{20,}"),
        check=_mixed_case_token,
        not_after=_TOKEN_EDGE | frozenset("-"),
    ),
    SecretRule(
        "sendgrid_key",
        ("sg.",),
        _ds(SendGridDetector.denylist[0]),
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:SendGridDetector",
    ),
    *(
        SecretRule(
            "pypi_token",
            ("pypi-",),
            _ds(pattern),
            not_after=_TOKEN_EDGE,
            origin="detect-secrets:PypiTokenDetector",
        )
        for pattern in PypiTokenDetector.denylist
    ),
    SecretRule(
        "square_oauth",
        ("sq0csp-",),
        _ds(SquareOAuthDetector.denylist[0]),
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:SquareOAuthDetector",
    ),
    SecretRule(
        "google_api_key",
        ("aiza",),
        re.compile(r"AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])"),
        not_after=_TOKEN_EDGE,
    ),
    SecretRule(
        "huggingface_token",
        ("hf_",),
        re.compile(r"hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9_])"),
        check=_mixed_case_token,
        not_after=_TOKEN_EDGE,
    ),
    SecretRule(
        "databricks_token",
        ("dapi",),
        re.compile(r"dapi[0-9a-f]{32}(?:-\d)?(?![A-Za-z0-9_])"),
        not_after=_TOKEN_EDGE,
    ),
    *(
        SecretRule(
            rule_id,
            triggers,
            re.compile(regex + r"(?![A-Za-z0-9_])"),
            not_after=_TOKEN_EDGE | frozenset("-"),
        )
        for rule_id, triggers, regex in VENDOR_TOKENS
    ),
    SecretRule(
        "telegram_bot_token",
        ("/bot",),
        re.compile(r"/bot(?P<v>\d{3,12}:[0-9A-Za-z_\-]{20,})(?=/|$|[\s\"'])"),
        groups=("v",),
    ),
    SecretRule(
        "telegram_bot_token",
        (":aa",),
        re.compile(r"(?:bot)?(?P<v>\d{6,10}:[0-9A-Za-z_\-]{35})(?![A-Za-z0-9_\-])"),
        groups=("v",),
        check=_mixed,
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:TelegramBotTokenDetector",
    ),
    SecretRule(
        "discord_bot_token",
        ("discord", "token", "bot"),
        _ds(DiscordBotTokenDetector.denylist[0], tail="[a-zA-Z\\d_\\-]*"),
        check=_mixed,
        not_after=_TOKEN_EDGE | frozenset("-."),
        origin="detect-secrets:DiscordBotTokenDetector",
    ),
    SecretRule(
        "twilio_key",
        tuple(f"sk{c}" for c in "0123456789abcdef"),
        re.compile(r"SK[0-9a-f]{32}(?![A-Za-z0-9_])"),
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:TwilioKeyDetector",
    ),
    SecretRule(
        "mailchimp_key",
        tuple(f"-us{d}" for d in range(1, 10)),
        _ds(MailchimpDetector.denylist[0]),
        not_after=_TOKEN_EDGE,
        origin="detect-secrets:MailchimpDetector",
    ),
    # Webhook URLs are credentials: whoever has one can post.
    SecretRule(
        "webhook_url",
        ("discord", "webhook.office.com", "/webhookb2/"),
        re.compile(
            r"(?:discord(?:app)?\.com/api/webhooks/\d+/(?P<d>[\w\-]{20,})"
            r"|webhook\.office\.com/webhookb2/(?P<t>[^\s\"'<>]{20,}))"
        ),
        groups=("d", "t"),
    ),
    # kubeadm bootstrap tokens: [a-z0-9]{6}.[a-z0-9]{16}
    SecretRule(
        "kubeadm_token",
        ("token", "kubeadm", "bootstrap"),
        re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}(?![A-Za-z0-9_.\-])"),
        check=lambda value: all(
            any(c.isdigit() for c in part) and any(c.isalpha() for c in part) for part in value.split(".")
        ),
        not_after=_PATH_EDGE,
    ),
    # detect-secrets' JWT regex stops before the signature (lazy tail); its validity check is used.
    SecretRule(
        "jwt",
        ("eyj",),
        # Bounded parts: an unbounded one backtracks over a whole long word after each "eyJ".
        re.compile(
            r"eyJ[A-Za-z0-9_\-]{4,8192}={0,2}\.[A-Za-z0-9_\-]{2,65536}={0,2}(?:\.[A-Za-z0-9_\-+/]{0,8192}={0,2})?"
        ),
        check=JwtTokenDetector.is_formally_valid,
        not_after=_TOKEN_EDGE | frozenset("-"),
        origin="detect-secrets:JwtTokenDetector",
    ),
    # ---- Vault -------------------------------------------------------------------------------
    SecretRule(
        "vault_token",
        ("hvs.", "hvb.", "hvr."),
        re.compile(r"hv[sbr]\.[A-Za-z0-9_\-]{20,}"),
        not_after=_PATH_EDGE,
    ),
    # Legacy "s.<24>" tokens look like many things; only on lines that mention Vault or a login.
    SecretRule(
        "vault_token",
        ("vault", "login", "token"),
        re.compile(r"[sb]\.[A-Za-z0-9]{24}(?![\w\-])"),
        check=_mixed,
        not_after=_PATH_EDGE,
    ),
    # ---- URLs and HTTP -----------------------------------------------------------------------
    # scheme://user:password@host; the password may hold "@", "#", "/", quotes, even a space.
    FinderRule("url_password", (r"re:://[^\s:/?#@]*:",), _NO_PATTERN, finder=_url_password_spans),
    # The same, URL-encoded (a redirect target, a form value): https%3A%2F%2Fuser%3Apw%40host
    SecretRule(
        "url_password",
        ("%3a%2f%2f",),
        re.compile(r"%3a%2f%2f[^%\s/?#@]*%3a(?P<pw>[^\s&\"'<>]{1,256}?)%40"),
        groups=("pw",),
        lowered=True,
    ),
    # A key as the whole userinfo: Sentry DSNs (https://<key>@o1.ingest.sentry.io/2), tokens.
    SecretRule(
        "url_userinfo",
        ("://",),
        _URL_USERINFO_KEY_RE,
        groups=("v",),
        check=lambda value: _mixed(value) or (len(value) >= 16 and _looks_random(value)),
    ),
    # redis://p@ss@host: a password-only userinfo with an at sign left unescaped.
    SecretRule(
        "url_userinfo",
        ("://",),
        re.compile(r"://(?P<v>[^\s/:@\"'<>?#]{1,256}@[^\s/:@\"'<>?#]{1,256})@(?=[A-Za-z0-9\[])"),
        groups=("v",),
    ),
    SecretRule(
        "authorization_header",
        ("authori",),
        re.compile(
            r"authori[sz]ation[\"']?\s*(?:=>|[:=])\s*(?:[bu](?=[\"']))?[\"']?"
            r"(?:(?:bearer|basic|token|apikey|api-key|key|jwt|otp|sso-key|splunk|bot)\s+"
            r"(?P<tok>[^\s\"',;\\]+(?:" + _NOT_ESCAPE + r"[^\s\"',;\\]*)*)"
            r"|(?:(?:aws4-hmac-sha256|digest|negotiate|ntlm|hmac|sharedkey|sharedkeylite|signature)\s+)?"
            # Unrolled (no backtracking state per character); trailing blanks are trimmed later.
            r"(?P<rest>[^\s\"'\\][^\"'\r\n\\]*(?:" + _NOT_ESCAPE + r"[^\"'\r\n\\]*)*))"
        ),
        groups=("tok", "rest"),
        check=lambda value: (
            value.lower() not in ("bearer", "basic", "token", "digest", "negotiate")
            and not value.startswith((">", "$"))
        ),
        not_after=_WORD_CHARS,
        lowered=True,
    ),
    SecretRule(
        "bearer_token",
        ("bearer",),
        re.compile(r"[Bb]earer\s+(?P<v>[A-Za-z0-9._~+/\-]{8,}=*)"),
        groups=("v",),
        check=lambda value: any(c.isdigit() for c in value) or _mixed(value) or "." in value,
        not_after=_WORD_CHARS | frozenset("-"),
    ),
    SecretRule(
        "basic_auth",
        ("basic ",),
        re.compile(r"Basic\s+(?P<v>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])"),
        groups=("v",),
        check=_basic_credentials,
        not_after=_WORD_CHARS | frozenset("-"),
    ),
    # ---- Azure ---------------------------------------------------------------------------------
    # detect-secrets' AzureStorageKeyDetector needs exactly 88 characters and masks the key name.
    SecretRule(
        "azure_connection_string",
        ("accountkey", "sharedaccesskey", "sharedaccesssignature", "sharedsecretvalue"),
        re.compile(
            r"(?:accountkey|sharedaccesskey|sharedaccesssignature|sharedsecretvalue)=(?P<v>[^;\s\"']+)"
        ),
        groups=("v",),
        not_after=_WORD_CHARS,
        lowered=True,
    ),
    SecretRule(
        "azure_sas_signature",
        ("sig=",),
        re.compile(r"sig=(?<=[?&;\s\"']sig=)(?P<v>[A-Za-z0-9%+/=_\-]{10,})"),
        groups=("v",),
    ),
    # ---- commands, cookies, markup, configuration files -----------------------------------------
    FinderRule("cli_flag", _COMMAND_TRIGGERS, _NO_PATTERN, finder=_command_spans),
    FinderRule("key_value", ("password", "passphrase", "passcode"), _NO_PATTERN, finder=_announced_spans),
    FinderRule("key_value", ("pass", "pwd", "secret", "token", "key"), _NO_PATTERN, finder=_table_row_spans),
    FinderRule("cli_flag", ("-u", "--user", "--login", "-l "), _NO_PATTERN, finder=_user_pass_flag_spans),
    FinderRule("cookie", ("cookie", "-b "), _NO_PATTERN, finder=_cookie_spans),
    FinderRule("markup", ("</", "value=", "content="), _NO_PATTERN, finder=_markup_spans),
    # CREATE USER u IDENTIFIED BY 'X', ALTER ROLE r WITH (ENCRYPTED) PASSWORD 'X', PASSWORD('X'),
    # SET PASSWORD FOR u = 'X', Oracle's unquoted IDENTIFIED BY X.
    SecretRule(
        "sql_password",
        ("identified", "password"),
        re.compile(
            r"(?:identified\s+(?:with\s+\S+\s+)?by(?:\s+password)?\s*|password(?:\s*=\s*|\s*\(\s*|\s+)"
            r"|set\s+password\s+for\s+\S+\s*=\s*(?:password\s*\(\s*)?)"
            r"(?:'(?P<sq>[^'\r\n]*)'|\"(?P<dq>[^\"\r\n]*)\"|\\'(?P<eq>[^\\\r\n]*)\\')"
            r"|identified\s+by\s+(?P<bare>[^\s;'\"(]+)"
        ),
        groups=("sq", "dq", "eq", "bare"),
        check=lambda value: value.lower() not in ("values", "password"),
        not_after=_WORD_CHARS,
        lowered=True,
    ),
    # .netrc: machine HOST login USER password X (one line, or "password X" on its own line).
    SecretRule(
        "netrc",
        ("password", "passwd"),
        re.compile(r"(?<!\S)pass(?:word|wd)\s+(?P<v>\S+)"),
        groups=("v",),
        requires=re.compile(
            r"(?i)(?:^|\s)machine\s+\S+\s+(?:login\s+\S+\s+)?(?:account\s+\S+\s+)?pass(?:word|wd)\s"
            r"|(?:^|\s)default\s+login\s+\S+\s+pass(?:word|wd)\s|^\s*pass(?:word|wd)\s+\S+\s*$"
        ),
    ),
    # .pgpass: host:port:database:user:password (the whole line, or a word of a log line).
    SecretRule(
        "pgpass",
        # Literal-led, small RE2 triggers: counted repeats would blow up RE2's DFA on random text.
        (r"re::(?:\d{1,5}|\*):[^:\s\"']+:[^:\s\"']+:[^\s:\"']",),
        re.compile(
            r"(?:^|(?<=[\s\"'>]))(?=[^:\s]*[A-Za-z.*])[A-Za-z0-9_.*\-\[\]]+:(?:\d{1,5}|\*):[^:\s\"'{}]+:"
            r"(?=[^:\s]*[A-Za-z*])[^:\s\"'{}]+:(?P<v>(?:[^\s\\\"':{}]|\\.)+)(?=[\s\"']|$)"
        ),
        groups=("v",),
    ),
    # ~/.docker/config.json: "auth": base64 of user:password; a k8s .dockerconfigjson value.
    SecretRule(
        "docker_auth",
        ("auth",),
        re.compile(
            r"[\"']auth\\*[\"']\s*:\s*\\*[\"'](?P<v>[A-Za-z0-9+/]{8,}={0,2})\\*[\"']"
            r"|(?<![\w])_auth\s*=\s*[\"']?(?P<n>[A-Za-z0-9+/]{8,}={0,2})"
        ),
        groups=("v", "n"),
        check=_basic_credentials,
    ),
    # redis: AUTH [user] X at a prompt, requirepass / masterauth X in redis.conf or CONFIG SET.
    SecretRule(
        "redis_auth",
        ("auth ", "requirepass", "masterauth"),
        re.compile(
            r"(?:(?:^|>\s*|\bredis-cli\b.{0,512}?\s)auth\s+(?:\S+\s+(?=[^\s\"']+\s*$))?|(?:requirepass|masterauth)\s+)"
            r"[\"']?(?P<v>[^\s\"',]+)"
        ),
        groups=("v",),
        check=lambda value: value not in _FLAG_STOP_WORDS,  # "Auth via a header": prose
        lowered=True,
        requires=re.compile(r"(?i)(?:^|>\s*|redis-cli.{0,512}?\s)auth\s+\S|requirepass\s+\S|masterauth\s+\S"),
    ),
    # Query parameters whose names say little elsewhere: ?code=, ?auth=, ?key=, ?signature=.
    SecretRule(
        "query_param",
        ("code=", "auth=", "key="),
        re.compile(r"[?&](?:code|auth|key)=(?P<v>[^&#\s\"'<>]{8,})", re.IGNORECASE),
        groups=("v",),
        check=_query_secret,
    ),
    # A form field of its own ("curl -d 'key=X'"): only a generated-looking value.
    SecretRule(
        "query_param",
        ("key=",),
        re.compile(r"(?:(?<=[\s\"'])|^)(?:api_?)?key=(?P<v>[A-Za-z0-9_\-]{8,})(?=[&\s\"']|$)", re.IGNORECASE),
        groups=("v",),
        check=_mixed,
    ),
    # A webhook URL's secret path segment (".../incomingWebhooks/postMessage/<id>/<secret>").
    FinderRule("webhook_url", ("webhook",), _NO_PATTERN, finder=_webhook_path_spans),
    # Signed URLs: X-Amz-Signature, X-Goog-Signature, Signature (S3 v2, CloudFront), sig (Azure).
    SecretRule(
        "query_param",
        ("signature=",),
        re.compile(r"[?&;][\w\-]*signature=(?P<v>[^&#\s\"'<>]{6,})", re.IGNORECASE),
        groups=("v",),
    ),
    # A sensitive word, a space, a quoted value: SQL (SECRET_ACCESS_KEY 'X'), prose (password "X").
    FinderRule(
        "key_value",
        ("pass", "pwd", "secret", "token", "key", "credential", "psk", "auth"),
        _NO_PATTERN,
        finder=_spaced_quoted_spans,
    ),
    FinderRule(
        "key_value",
        ("root", "admin", 'sa"', "sa'", "postgres", "sys"),
        _NO_PATTERN,
        finder=_admin_pair_spans,
    ),
    # Credentials as call arguments: .set("fs.s3a.secret.key", "X"), env('DB_PASSWORD', 'X'),
    # getConnection(url, "user", "X"), HTTPBasicAuth('u', 'X'), auth=('u', 'X'), new PDO(dsn, u, 'X').
    FinderRule(
        "key_value",
        ('",', "',", "auth"),
        _NO_PATTERN,
        finder=_call_argument_spans,
    ),
    # Terraform plan: "DatabasePassword" = "****" -> "X" (the new value after the arrow).
    SecretRule(
        "key_value",
        ("->",),
        re.compile(
            r"(?<![\w.\-])(?P<k>[\w.\-]{1,100})[\"']?\s*[:=]\s*\S[^\r\n]{0,200}?\s->\s*[\"'](?P<v>[^\"'\r\n]+)[\"']"
        ),
        groups=("v",),
        check=lambda value: not _is_placeholder(value),
        requires=re.compile(
            r"(?i)(?:pass|secret|token|key)[\w.\-]{0,100}[\"']?\s*[:=]\s*\S[^\r\n]{0,200}?\s->\s*[\"']"
        ),
    ),
    # Windows: cmdkey /pass:X, net use \\srv\share X /user:u, ConvertTo-SecureString "X" -AsPlainText
    SecretRule(
        "cli_flag",
        ("/pass", "net use", "convertto-securestring"),
        re.compile(
            r"(?<!\S)/pass(?:word)?:(?P<p>\S+)"
            r"|\bnet\s+use\s+\S+\s+(?P<n>[^\s/*\[\"][^\s]*)|\bnet\s+use\b.*?/user:\S+\s+(?P<nu>[^\s/*\[][^\s]*)"
            r"|convertto-securestring\s+(?:-(?:asplaintext|force)\s+)*(?:-string\s+)?[\"'](?P<c>[^\"'\r\n]+)[\"']"
        ),
        groups=("p", "n", "nu", "c"),
        lowered=True,
    ),
    # schtasks /U u /P X, turbovncviewer /user u /password X: a Windows-style password flag on a
    # line that has a user flag.
    SecretRule(
        "cli_flag",
        ("/p ", "/rp ", "/pass ", "/password "),
        re.compile(r"(?<!\S)/(?:password|pass|rp|p)[ \t]+(?P<w>[^\s/][^\s]*)"),
        groups=("w",),
        lowered=True,
        requires=re.compile(r"(?i)(?<!\S)/(?:user|u|tn)\b"),
    ),
    # Go's MySQL DSN: user:X@tcp(host:3306)/db
    SecretRule(
        "url_password",
        ("@tcp(", "@unix(", "@udp("),
        re.compile(r"(?<![\w.\-])[\w.\-]*:(?P<v>[^\s@/:]+)@(?:tcp|unix|udp)\("),
        groups=("v",),
    ),
    # echo X | docker login --password-stdin, | sudo -S, | chpasswd, | base64
    FinderRule("cli_flag", ("echo", "printf"), _NO_PATTERN, finder=_piped_secret_spans),
    FinderRule("key_value", ('"data"', '"stringdata"'), _NO_PATTERN, finder=_inline_data_spans),
    # .npmrc: _auth = base64 (always a credential)
    SecretRule(
        "docker_auth",
        ("_auth",),
        re.compile(r"(?:^|[\s:\"'])_auth\s*=\s*[\"']?(?P<v>[A-Za-z0-9+/]{8,}={0,2})"),
        groups=("v",),
    ),
    # Terraform state and outputs: {"value": "X", "sensitive": true}, "db_password": {"value": "X"}
    SecretRule(
        "key_value",
        ("sensitive",),
        re.compile(r"\"value\"\s*:\s*\"(?P<v>[^\"\r\n]*)\"[^{}\r\n]{0,200}?\"sensitive\"\s*:\s*true"),
        groups=("v",),
    ),
    FinderRule("key_value", ("value",), _NO_PATTERN, finder=lambda line, lowered: _object_value_spans(line)),
    # PagerDuty's routing key (32 hex); "routing_key=celery" is a Celery queue, not a secret.
    SecretRule(
        "key_value",
        ("routing",),
        re.compile(r"routing_?key[\"']?\s*[:=]\s*[\"']?(?P<v>[0-9a-f]{32})(?![0-9a-z])"),
        groups=("v",),
        lowered=True,
    ),
    # A "token   VALUE" row of a table (vault login, vault token create).
    SecretRule(
        "key_value",
        ("token", "password", "secret"),
        re.compile(r"^\s*(?:token|password|secret|client_secret|secret_id)\s{2,}(?P<v>\S{8,})\s*$"),
        groups=("v",),
    ),
    # curl -u KEY: (an API key as the user, no password: Stripe, Mailgun)
    SecretRule(
        "cli_flag",
        ("-u ", "--user "),
        re.compile(r"(?<!\S)-(?:u|-user)[ \t]+[\"']?(?P<v>[A-Za-z0-9_\-]{16,}):(?=[\s\"']|$)"),
        groups=("v",),
        check=_mixed,
    ),
    # ---- key = value -------------------------------------------------------------------------
    # password=X, "api_key": "X", 'secret': 'X', AIRFLOW__CORE__FERNET_KEY=X, --password=X,
    # X-Api-Key: X, {\"password\": \"X\"} (JSON inside a JSON string).
    KeyValueRule(
        "key_value",
        _KV_TRIGGERS,
        _KV_WORDS_RE,
        key_pattern=re.compile(r"-{0,2}\.?[A-Za-z_][\w.\-]*"),
        op_pattern=re.compile(
            r"(?:\\*[\"']|&quot;|%22)?\]?[ \t]*(?P<op>:=|=>|=|:(?![/:])|%3[Dd]|%3[Aa](?!%2[Ff]))[ \t]*"
        ),
        # u'X' (a Python 2 repr, Ansible output), N'X' (SQL Server): the prefix is not the value.
        value_pattern=re.compile(
            r"(?:[uUbBN](?=['\"]))?(?:"
            + _QUOTED
            + r"|(?P<bare>\$\{[^}\s]*\}|[^\s\"'`,;\\]+(?:"
            + _NOT_ESCAPE
            + r"[^\s\"'`,;\\]*)*))"
        ),
    ),
    # --password X, --api-key "X"
    KeyValueRule(
        "cli_flag",
        ("pass", "pwd", "secret", "token", "key"),
        _KV_WORDS_RE,
        key_pattern=re.compile(r"--?[A-Za-z][\w\-]*"),
        op_pattern=re.compile(r"[ \t]+"),
        value_pattern=re.compile(_QUOTED + r"|(?P<bare>[^\s\"'`|;&<>\-][^\s\"'`|;&<>]*)"),
        flag=True,
    ),
    # "secret X", "bindpw X", "the token is X", "password is: X": a key, blanks or "is", then a
    # value that looks generated (prose after a key word is common, so the value must look random).
    KeyValueRule(
        "key_value",
        _KV_TRIGGERS,
        _KV_WORDS_RE,
        key_pattern=re.compile(r"[A-Za-z_][\w.\-]*"),
        # "password X", "password is X", "password for etl is X", "password set to X",
        # "password generated: X".
        op_pattern=re.compile(
            r"[ \t]+(?:(?:(?:for|of)[ \t]+[\w.@'\"\-]{1,64}[ \t]+)?"
            r"(?:is|was|of|for|=|to|(?:set|changed|reset|updated)[ \t]+to|generated|created)[ \t]*:?[ \t]+)?"
        ),
        # A value in backticks: an inline code span in Markdown ("the token `X`").
        value_pattern=re.compile(
            _QUOTED + r"|`(?P<tq>[^`\s]{8,256})`|(?P<bare>[^\s\"'`,;<>()\[\]{}]{8,256})"
        ),
        check=lambda value: _spaced_secret(value),
    ),
    # credentials: user:X, login user:X, userpass=user:X
    SecretRule(
        "key_value",
        ("cred", "login", "userpass", "user_pass"),
        re.compile(
            r"(?:credentials?|creds|login|userpass|user_pass)(?:[\"']?[ \t]*[:=][ \t]*[\"']?|[ \t]+[\"']?)"
            r"(?:[^\s:%,\"'@/=(]{1,64}:(?P<v>[^\s\"'@]{3,256})|[^\s:%,\"'@/=(]{1,64}/(?P<w>[^\s\"'@/]{3,256}))"
        ),
        groups=("v", "w"),
        # user/X only when X looks generated: "login: admin/settings" is a path.
        check=lambda value: (
            len(value.rstrip(")]}>;,.")) >= 4
            and not value.strip(")]};,.").isdigit()
            and not value.startswith("/")
            and (_spaced_secret(value) or not _NAME_LIKE_RE.fullmatch(value))
        ),
        not_after=_WORD_CHARS,
        lowered=True,
    ),
    # Authorization: Digest ..., response="X"; Stripe-Signature: t=..., v1=X
    SecretRule(
        "authorization_header",
        ("digest", "stripe-signature"),
        re.compile(r"(?:\bresponse=\"|[,\s]v[01]=)(?P<v>[0-9a-zA-Z]{8,})"),
        groups=("v",),
        requires=re.compile(r"(?i)digest|stripe-signature"),
    ),
    # curl -u user:password, curl -vu user:password (wget --user=u --password=p is a key=value
    # pair); docker run -u 50000:0 is a uid:gid.
    SecretRule(
        "cli_flag",
        ("-u ", "--user ", "-vu ", "-ku ", "-su ", "-iu "),
        re.compile(r"-(?:[vksi]?u|-user)[ \t]+[\"']?(?!\d+:\d+(?:[\s\"']|$))[^\s:\"']+:(?P<v>[^\s\"']+)"),
        groups=("v",),
        not_after=_WORD_CHARS | frozenset("-"),
    ),
    # A log line about a token that ends with it: "Refresh token issued for u / c: X",
    # "refresh_token grant with value: X not found".
    SecretRule(
        "key_value",
        ("token", "secret"),
        re.compile(
            r"\b(?:(?:access|refresh|id|api|auth|session|bearer)[ _]token|client[ _]secret)\b[^\r\n]{0,160}?"
            r"(?::|\bvalue:?)[ \t]+[\"'`]?(?P<v>[A-Za-z0-9_\-+/.=]{24,4096})",
            re.IGNORECASE,
        ),
        groups=("v",),
        check=lambda value: _looks_random(value) and not _PATH_VALUE_RE.fullmatch(value),
    ),
    # "Error 2 connecting root:X@localhost:6379": user:password@host:port without a scheme.
    SecretRule(
        "url_password",
        ("@",),
        re.compile(
            r"(?<![\w/:.@%\-])[A-Za-z_][\w.\-]{0,63}:(?P<v>[^\s:@/\"'<>]{4,256})@[A-Za-z0-9][\w.\-]{0,253}:\d{2,5}\b"
        ),
        groups=("v",),
        check=lambda value: not value.isdigit(),
    ),
    # FTP, POP3 and IRC sessions: "PASS X" on a line of its own.
    SecretRule(
        "key_value",
        ("pass ",),
        re.compile(r"^[ \t]*(?:>[ \t]*)?PASS[ \t]+(?P<v>\S{4,256})[ \t]*\r?$"),
        groups=("v",),
    ),
    # 'password': ['X'] (a list of one value in a dict repr)
    SecretRule(
        "key_value",
        ("pass", "secret", "token", "key"),
        re.compile(
            r"[\"'](?:password|passwd|secret|token|api_?key)[\"']\s*:\s*\[\s*[\"'](?P<v>[^\"'\r\n]{4,256})[\"']",
            re.IGNORECASE,
        ),
        groups=("v",),
    ),
    # composer config github-oauth.github.com X / '{"github.com": "X"}'
    SecretRule(
        "cli_flag",
        ("github-oauth",),
        re.compile(
            r"github-oauth(?:\.github\.com)?[ \t]+(?:'\{\"github\.com\":[ \t]*\")?(?P<v>[A-Za-z0-9_]{20,})"
        ),
        groups=("v",),
    ),
    # vault operator init: "Unseal Key 1: X", "Recovery Key 1: X".
    SecretRule(
        "key_value",
        ("unseal key", "recovery key"),
        re.compile(r"(?:unseal|recovery)[ \t]+key(?:[ \t]+\d{1,2})?[ \t]*:[ \t]*(?P<v>\S{8,})"),
        groups=("v",),
        lowered=True,
    ),
    # PHP's PDO and what wraps it: ('mysql:host=...', 'user', 'X') in a stack trace or code.
    SecretRule(
        "key_value",
        ("mysql:", "pgsql:", "sqlsrv:", "oci:", "odbc:", "dblib:", "firebird:", "ibm:", "informix:"),
        re.compile(
            r"\(\s*(?P<q>['\"])(?:mysql|pgsql|sqlsrv|oci|odbc|dblib|firebird|ibm|informix):[^'\"\r\n]{0,512}(?P=q)"
            r"\s*,\s*(?P<u>['\"])[^'\"\r\n]{0,256}(?P=u)\s*,\s*(?P<p>['\"])(?P<v>[^'\"\r\n]{1,256})(?P=p)"
        ),
        groups=("v",),
    ),
    # Oracle: CONNECT user/X@db, user/X@(DESCRIPTION=...) in a log line.
    SecretRule(
        "cli_flag",
        ("connect ", "@(description"),
        re.compile(
            r"\bconnect[ \t]+[\w$#]+/(?P<c>[^\s/@\"']{3,256})@"
            r"|(?<![\w/])[\w$#]+/(?P<d>[^\s/@\"']{3,256})@\(description",
            re.IGNORECASE,
        ),
        groups=("c", "d"),
    ),
    # -uUSER -pPASSWORD: MySQL's client flags, also passed through another tool's arguments.
    SecretRule(
        "cli_flag",
        (" -u",),
        re.compile(r"(?<!\S)-u[A-Za-z_][\w.\-]*[ \t]+-p(?P<v>[^\s\"']{4,})"),
        groups=("v",),
    ),
)


# --------------------------------------------------------------------------------------------
# Multi-line rules: PEM private keys
# --------------------------------------------------------------------------------------------

# "+" for spaces: keys that went through form/URL encoding (keyfile_dict in a conn URI).
_PEM_BEGIN_RE = re.compile(
    r"-----BEGIN[ +](?P<label>(?:[A-Z0-9]+[ +]){0,3})PRIVATE[ +]KEY(?P<block>[ +]BLOCK)?-----"
)
_PEM_END_RE = re.compile(r"-----END[ +](?:[A-Z0-9]+[ +]){0,3}PRIVATE[ +]KEY(?:[ +]BLOCK)?-----")
# Body lines of a key whose END marker was cut off (truncated log, max line length).
_PEM_TRUNCATED_BODY_RE = re.compile(
    r"(?:(?:\r?\n|\\r\\n|\\n|[ \t])+(?:[A-Za-z0-9+/=]{8,}|(?:Proc-Type|DEK-Info|Comment):[^\r\n\\]*))*"
)


def _pem_spans(text: str, replacement: str) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, marker)`` for each private key block in ``text``.

    A complete block becomes ``-----BEGIN X PRIVATE KEY----- *** -----END X PRIVATE KEY-----``;
    a block whose END was cut off loses everything after BEGIN that looks like key material.

    :param text: the whole text (blocks span lines, or one line with escaped ``\\n``).
    :param replacement: the text that stands for the key material.
    """
    if "PRIVATE" not in text:
        return
    position = 0
    end: re.Match[str] | None = None
    no_more_ends = False  # once no END follows, none follows a later BEGIN either: stay linear
    while True:
        begin = _PEM_BEGIN_RE.search(text, position)
        if begin is None:
            return
        header = begin.group(0)
        footer = "-----END" + header[len("-----BEGIN") :]
        if not no_more_ends and (end is None or end.start() < begin.end()):
            end = _PEM_END_RE.search(text, begin.end())
            no_more_ends = end is None
        following = _PEM_BEGIN_RE.search(text, begin.end())
        if end is not None and (following is None or end.start() < following.start()):
            yield begin.start(), end.end(), f"{header} {replacement} {footer}"
            position = end.end()
        elif text.startswith(f" {replacement}", begin.end()):
            position = begin.end()  # already masked: scrubbing twice changes nothing
        else:
            body = _PEM_TRUNCATED_BODY_RE.match(text, begin.end())
            stop = body.end() if body is not None else begin.end()
            yield begin.start(), max(stop, begin.end()), f"{header} {replacement}"
            position = max(stop, begin.end())


# --------------------------------------------------------------------------------------------
# Multi-line rules: a sensitive key whose value is on the next lines
# --------------------------------------------------------------------------------------------

# "password: |" (a YAML block scalar), "<SignatureProvided>" alone on its line, a Terraform
# 'variable "db_password" {' block (its "default = ..." is the secret).
_BLOCK_START_RE = re.compile(
    r"(?m)^(?P<indent>[ \t]*)(?:-[ \t]+)?[\"']?(?P<key>[\w.\-]{1,100})[\"']?[ \t]*:[ \t]*[|>][+-]?\d?"
    r"[ \t]*(?:#.*)?$"
    r"|^[ \t]*<(?P<tag>[A-Za-z_][\w:.\-]{0,63})>[ \t]*$"
    r"|^[ \t]*variable[ \t]+\"(?P<var>[\w\-]{1,100})\"[ \t]*\{[ \t]*$"
    r"|^(?P<dindent>[ \t]*)[\"']?(?P<data>data|stringData)[\"']?[ \t]*:[ \t]*(?P<brace>\{)?[ \t]*$"
    # A command that prints a credential: its output, on the next line, is the credential.
    r"|^[ \t]*(?:[$#>%][ \t]*)?(?P<printer>heroku[ \t]+auth:token|gh[ \t]+auth[ \t]+token"
    r"|aws[ \t]+ecr[ \t]+get-login-password"
    r"|gcloud[ \t]+auth[ \t]+(?:application-default[ \t]+)?print-\w+-token"
    r"|az[ \t]+account[ \t]+get-access-token|kubectl[ \t]+create[ \t]+token|vault[ \t]+print[ \t]+token"
    r"|openssl[ \t]+rand|(?:echo|printf)[ \t][^\n|]*\|[ \t]*base64|kubectl[ \t]+get[ \t]+secrets?[ \t][^\n]*"
    r"(?:base64|jsonpath)|cat[ \t]+\S*(?:token|passw|secret|credential|\.pgpass|\.netrc)\S*)[^\n]*$"
)
_PRINTED_RE = re.compile(r"[ \t]*(?P<v>[^\s\"'`$#>]\S{7,4095})[ \t]*")
# One entry of a Kubernetes Secret's data: "password: cGFzcw==" or '"password": "cGFzcw==",'.
_DATA_ENTRY_RE = re.compile(
    r"[ \t]*[\"']?[\w.\-]{1,253}[\"']?[ \t]*:[ \t]*[\"']?(?P<v>[^\s\"']{1,65536})[\"']?,?[ \t]*$"
)
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def _secret_data_value(value: str, string_data: bool) -> bool:
    """Whether a value under ``data:`` (``stringData:``) of a manifest is a Secret's value: any
    value of ``stringData``; under ``data`` (shared with ConfigMaps), a base64 value that decodes to
    text or is long."""
    if string_data:
        return not _is_placeholder(value)
    if len(value) < 8 or len(value) % 4 or not _BASE64_RE.fullmatch(value):
        return False
    if len(value) >= 24:
        return True
    try:
        return base64.b64decode(value, validate=True).decode("utf-8").isprintable()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False


_TF_DEFAULT_RE = re.compile(r"^[ \t]*default[ \t]*=[ \t]*(?P<v>\S.*?)[ \t]*$")
# A block is followed for at most this many lines.
_MAX_BLOCK_LINES = 200


def _next_line(text: str, position: int) -> tuple[str, int, int]:
    """The line that starts at ``position`` (without its break), and where the next one starts."""
    end = text.find("\n", position)
    if end < 0:
        end = len(text)
    return text[position:end].rstrip("\r"), position, end + 1


def _block_spans(text: str) -> Iterator[tuple[int, int]]:
    """Yield the spans of values that follow their sensitive key on later lines.

    Linear: block starts are found in one pass; each block line is read once, and the search
    goes on after the block.

    :param text: the whole text.
    """
    if "\n" not in text:
        return
    position = 0
    while True:
        start = _BLOCK_START_RE.search(text, position)
        if start is None:
            return
        position = start.end() + 1
        if start.group("key") is not None:
            if not is_sensitive_key(start.group("key")):
                continue
            depth = len(start.group("indent").expandtabs())
            for _ in range(_MAX_BLOCK_LINES):
                if position >= len(text):
                    break
                body, first, following = _next_line(text, position)
                content = body.lstrip()
                if content and len(body) - len(content) <= depth:
                    break
                if content:
                    yield first + len(body) - len(content), first + len(body)
                position = following
        elif start.group("tag") is not None:
            if not is_sensitive_key(start.group("tag").rsplit(":", 1)[-1]):
                continue
            closing = f"</{start.group('tag')}>"
            for _ in range(_MAX_BLOCK_LINES):
                if position >= len(text):
                    break
                body, first, following = _next_line(text, position)
                if body.strip() == closing:
                    break
                content = body.strip()
                if content:
                    begin = first + len(body) - len(body.lstrip())
                    yield begin, begin + len(content)
                position = following
        elif start.group("printer") is not None:
            for _ in range(3):  # the output follows, maybe after a blank line
                if position >= len(text):
                    break
                body, first, following = _next_line(text, position)
                position = following
                if not body.strip():
                    continue
                printed = _PRINTED_RE.fullmatch(body)
                if printed is not None and not _is_placeholder(printed.group("v")):
                    yield first + printed.start("v"), first + printed.end("v")
                break
        elif start.group("data") is not None:
            depth = len(start.group("dindent").expandtabs())
            string_data = start.group("data") == "stringData"
            for _ in range(_MAX_BLOCK_LINES):
                if position >= len(text):
                    break
                body, first, following = _next_line(text, position)
                content = body.lstrip()
                if content and (len(body) - len(content) <= depth or content.startswith("}")):
                    break
                entry = _DATA_ENTRY_RE.fullmatch(body)
                if entry is not None and _secret_data_value(entry.group("v"), string_data):
                    yield first + entry.start("v"), first + entry.end("v")
                position = following
        elif start.group("var") is not None and is_sensitive_key(start.group("var")):
            for _ in range(_MAX_BLOCK_LINES):
                if position >= len(text):
                    break
                body, first, following = _next_line(text, position)
                if body.strip() == "}":
                    break
                default = _TF_DEFAULT_RE.match(body)
                if default is not None and not _is_placeholder(default.group("v")):
                    begin, end = default.span("v")
                    value = default.group("v")
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                        begin, end = begin + 1, end - 1
                    if end > begin:
                        yield first + begin, first + end
                position = following


# "- name: DB_PASSWORD" / 'name = "admin.password"' on one line, its "value" on one of the next.
_NAME_LINE_RE = re.compile(
    r"(?m)^[ \t]*(?:-[ \t]+)?[\"']?name[\"']?[ \t]*[:=][ \t]*[\"']?(?P<k>[\w.\-]{1,100})[\"']?[ \t]*,?[ \t]*$"
    # "JSESSIONID": { ... "value": "X" }: a cookie jar or a settings object named by its key.
    r"|^[ \t]*\"(?P<o>[\w.\-]{1,100})\"[ \t]*:[ \t]*\{[ \t]*$"
)
_VALUE_LINE_RE = re.compile(
    r"[ \t]*[\"']?value[\"']?[ \t]*[:=][ \t]*"
    r"(?:\"(?P<dq>[^\"\r\n]*)\"|'(?P<sq>[^'\r\n]*)'|(?P<bare>[^\s,}\]\"'][^\s,}\]]*))[ \t]*,?[ \t]*"
)
# {"name": "DB_PASSWORD", "value": "X"} (ECS, docker inspect), {name: X, value: Y}, on one line.
_NAME_VALUE_INLINE_RE = re.compile(
    r"[\"']?name[\"']?[ \t]*[:=][ \t]*[\"']?(?P<k>[\w.\-]{1,100})[\"']?[ \t]*,"
    r"[ \t]*[\"']?value[\"']?[ \t]*[:=][ \t]*"
    r"(?:\"(?P<dq>[^\"\r\n]*)\"|'(?P<sq>[^'\r\n]*)'|(?P<bare>[^\s,}\]\"'][^\s,}\]]*))"
)
# A line that announces a credential on the next one: "Please use the following password:".
_LABEL_END_RE = re.compile(r":[ \t]*\r?\n")
_LABEL_WORD_RE = re.compile(r"\b(?:password|passphrase|passcode|token|secret)\b", re.IGNORECASE)
_LABEL_NOT_RE = re.compile(r"\b(?:fingerprint|public|randomart|hash|id|file|path|name|type)\b", re.IGNORECASE)


def _value_of(match: re.Match[str], base: int) -> tuple[int, int] | None:
    group = next(g for g in ("dq", "sq", "bare") if match.start(g) >= 0)
    value = match.group(group)
    if not value or _is_placeholder(value) or not any(c.isalnum() for c in value):
        return None
    if group == "bare" and value.lower() in ("true", "false"):
        return None
    return base + match.start(group), base + match.end(group)


def _name_value_spans(text: str) -> Iterator[tuple[int, int]]:
    """Values whose sensitive name is a sibling key: Kubernetes and ECS env entries
    (``- name: DB_PASSWORD`` / ``value: X``), Helm's ``set_sensitive { name = ... value = ... }``.

    :param text: the whole text.
    """
    if "value" not in text.lower():
        return
    for match in _NAME_VALUE_INLINE_RE.finditer(text):
        if is_sensitive_key(match.group("k").rsplit(".", 1)[-1]):
            span = _value_of(match, 0)
            if span is not None:
                yield span
    if "\n" not in text:
        return
    for match in _NAME_LINE_RE.finditer(text):
        if not is_sensitive_key((match.group("k") or match.group("o")).rsplit(".", 1)[-1]):
            continue
        position = match.end() + 1
        for _ in range(3 if match.group("k") else 6):
            if position >= len(text):
                break
            body, first, following = _next_line(text, position)
            value = _VALUE_LINE_RE.fullmatch(body)
            if value is not None:
                span = _value_of(value, first)
                if span is not None:
                    yield span
                break
            if _NAME_LINE_RE.match(body) or body.lstrip().startswith("}"):
                break  # the next entry: this one has no value (valueFrom, secretKeyRef)
            position = following


_JAAS_RE = re.compile(r"LoginModule\s+(?:required|requisite|sufficient|optional)\b")
_JAAS_USER_RE = re.compile(r"(?<![\w.])user_[\w\-]{1,64}\s*=\s*(?:\\?\")(?P<v>[^\"\\\r\n]{1,256})(?:\\?\")")


def _jaas_spans(text: str) -> Iterator[tuple[int, int]]:
    """Kafka's JAAS ``PlainLoginModule required ... user_alice="X";``: each ``user_NAME`` is an
    account and its password, up to the entry's ``;``.

    :param text: the whole text.
    """
    if "LoginModule" not in text:
        return
    body_end = 0
    for module in _JAAS_RE.finditer(text):
        if module.start() < body_end:
            continue  # inside the entry read already: each character is read once
        end = text.find(";", module.end(), module.end() + 4096)
        body_end = end if end >= 0 else min(len(text), module.end() + 4096)
        for user in _JAAS_USER_RE.finditer(text, module.end(), body_end):
            if not _is_placeholder(user.group("v")):
                yield user.span("v")


def _label_spans(text: str) -> Iterator[tuple[int, int]]:
    """A credential printed alone on the line after one that announces it ("An admin user has
    been created ... Please use the following password to proceed:" / the password).

    :param text: the whole text.
    """
    for end in _LABEL_END_RE.finditer(text):
        start = text.rfind("\n", max(0, end.start() - 300), end.start()) + 1
        label = text[start : end.start()]
        if not _LABEL_WORD_RE.search(label) or _LABEL_NOT_RE.search(label) or len(label.split()) < 2:
            continue
        position = end.end()
        for _ in range(2):  # the value, maybe after a blank line
            if position >= len(text):
                break
            body, first, following = _next_line(text, position)
            position = following
            if not body.strip():
                continue
            printed = _PRINTED_RE.fullmatch(body)
            if (
                printed is not None
                and _spaced_secret(printed.group("v"))
                and not _is_placeholder(printed.group("v"))
            ):
                yield first + printed.start("v"), first + printed.end("v")
            break


# --------------------------------------------------------------------------------------------
# Trigger prefilter
# --------------------------------------------------------------------------------------------


def _build_trigger_set(rules: tuple[SecretRule, ...]) -> tuple[re2.Set, list[tuple[int, ...]]]:
    """Compile all rules' triggers into one RE2 ``Set`` (one linear pass per line).

    :param rules: the rule registry.
    :return: the compiled set and, per trigger index, the indexes of the rules it enables.
    """
    by_trigger: dict[str, list[int]] = {}
    for index, rule in enumerate(rules):
        for trigger in rule.triggers:
            key = trigger if trigger.startswith("re:") else trigger.lower()  # "\\S" is not "\\s"
            by_trigger.setdefault(key, []).append(index)
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    trigger_set = re2.Set.SearchSet(options)
    rule_indexes: list[tuple[int, ...]] = []
    for trigger, indexes in by_trigger.items():
        # "re:" marks a trigger that is a (linear-time RE2) regex rather than a literal.
        trigger_set.Add(trigger[3:] if trigger.startswith("re:") else re.escape(trigger))
        rule_indexes.append(tuple(indexes))
    trigger_set.Compile()
    return trigger_set, rule_indexes


_TRIGGER_SET, _TRIGGER_RULES = _build_trigger_set(RULES)


def _lower_same_length(text: str) -> str:
    """Lower-case ``text`` keeping every offset (a few characters grow when lower-cased).

    :param text: one line.
    """
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(low := c.lower()) != 1 else low for c in text)


@lru_cache(maxsize=256)
def _literal_regex(variants: tuple[str, ...]) -> re.Pattern[str]:
    """Compile an alternation of literal strings, longest first.

    :param variants: the strings, already sorted longest first.
    """
    return re.compile("|".join(re.escape(v) for v in variants))


# --------------------------------------------------------------------------------------------
# The scrubber
# --------------------------------------------------------------------------------------------


# Where a token ends: a cut there never leaves half a token that a format rule would have known.
# In a line longer than _LONG_LINE, an unbroken run of token characters longer than 2 * _RUN_KEEP
# (a 4 MB value, a base64 blob) is read by the line rules as its first and last _RUN_KEEP
# characters: a rule that masks the shortened run masks the whole of it. The run has no separator
# inside, so no secret there has the word edges the rules need; known secrets are matched on the
# whole text.
_LONG_LINE = 1 << 16
_RUN_KEEP = 256
_LONG_RUN_RE = re.compile(r"(?<![\w+/.%~\-])[\w+/.%~\-]{" + str(2 * _RUN_KEEP + 1) + r",}")


def _shorten_runs(line: str) -> tuple[str, list[int], list[int]]:
    """``line`` with the middle of each long run taken out; where (positions in the short line, in
    order) and how many characters were taken out up to each of them (running totals)."""
    parts: list[str] = []
    positions: list[int] = []
    totals: list[int] = []
    position = short = taken = 0
    for run in _LONG_RUN_RE.finditer(line):
        head_end, tail_start = run.start() + _RUN_KEEP, run.end() - _RUN_KEEP
        parts.append(line[position:head_end])
        short += head_end - position
        taken += tail_start - head_end
        positions.append(short)
        totals.append(taken)
        position = tail_start
    if not positions:
        return line, positions, totals
    parts.append(line[position:])
    return "".join(parts), positions, totals


def _widen(position: int, positions: list[int], totals: list[int], is_start: bool) -> int:
    """Where ``position`` of a shortened line is in the whole line: a span that reaches over a cut
    covers what was taken out there."""
    index = (bisect.bisect_right if is_start else bisect.bisect_left)(positions, position)
    return position + (totals[index - 1] if index else 0)


_SEPARATOR_RE = re.compile(r"[\s\"'`,;&|<>(){}\[\]=:]")


def _last_separator(text: str) -> int:
    """Return the index of the last separator in ``text``, or -1."""
    last = -1
    for match in _SEPARATOR_RE.finditer(text):
        last = match.start()
    return last


def _first_separator(text: str) -> int:
    """Return the index just after the first separator in ``text``, or -1."""
    match = _SEPARATOR_RE.search(text)
    return match.end() if match else -1


# Lines as str.splitlines(keepends=True) cuts them, found one at a time.
_LINE_RE = re.compile(
    "[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*(?:\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])?"
)


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    rule: str
    marker: str | None  # None: the plain replacement


class Scrubber:
    """Replace secrets in text and data with ``***``, keeping the structure around them.

    :param known_secrets: exact values to mask wherever they occur (and their URL-encoded and
        JSON-escaped forms); values shorter than :data:`MIN_KNOWN_SECRET_LENGTH` are ignored.
    :param replacement: what stands in for a secret value.

    .. seealso:: :data:`RULES` for the format rules and their ids.
    """

    def __init__(self, known_secrets: Iterable[str] = (), *, replacement: str = _DEFAULT_REPLACEMENT) -> None:
        self.replacement = replacement
        variants: set[str] = set()
        for secret in known_secrets:
            if not isinstance(secret, str):
                continue
            secret = secret.strip()
            # Only what cannot be a secret is skipped: a value someone passed is masked even if
            # it looks like a reference ("MY_DB_PASS", "[hunter2]").
            if len(secret) < MIN_KNOWN_SECRET_LENGTH or secret == replacement:
                continue
            variants.add(secret)
            variants.add(quote(secret, safe=""))
            variants.add(quote_plus(secret, safe=""))
            variants.add(json.dumps(secret)[1:-1])
            variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        # Longest first: a secret that contains another one is masked whole.
        self._known: tuple[str, ...] = tuple(sorted(variants, key=lambda v: (-len(v), v)))

    @staticmethod
    def rule_ids() -> list[str]:
        """Return every rule id a :class:`Redaction` can carry, sorted."""
        return sorted({rule.rule_id for rule in RULES} | {"known_secret", "private_key"})

    # ---- public API ------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Return ``text`` with every secret value replaced; multi-line aware (PEM blocks).

        :param text: any text: a log excerpt, a traceback, a rendered message.
        """
        if not text:
            return text
        out: io.StringIO | None = None
        position = 0
        for span in self._iter_spans(text):
            if out is None:
                out = io.StringIO()
            out.write(text[position : span.start])
            out.write(span.marker if span.marker is not None else self.replacement)
            position = span.end
        if out is None:
            return text
        out.write(text[position:])
        return out.getvalue()

    def scrub_line(self, line: str) -> str:
        """Return one line with its secrets replaced.

        :param line: a single line (a PEM BEGIN marker without its END is masked to the line end).
        """
        return self.scrub(line)

    def scrub_cut(self, text: str, limit: int, *, keep: str = "head") -> str:
        """Scrub ``text``, then cut it to at most ``limit`` characters: never the other way round.

        Only a window of ``limit`` plus :data:`CUT_MARGIN` characters is scrubbed, so the cost is
        bounded whatever the length of ``text``. The window ends (``keep="head"``) or starts
        (``keep="tail"``) at a line break, else at a separator (space, quote, ``=``...), so it
        never holds a piece of a token whose other piece would carry the format; a window without
        any separator (one giant token) is dropped.

        :param text: the text to scrub and cut.
        :param limit: the longest result, in characters (``>= 0``).
        :param keep: ``"head"`` keeps the beginning of ``text``, ``"tail"`` its end (a traceback).
        :return: the scrubbed text, at most ``limit`` characters long.
        :raises ValueError: when ``keep`` is neither ``"head"`` nor ``"tail"``.
        """
        if keep not in ("head", "tail"):
            raise ValueError(f"keep must be 'head' or 'tail', not {keep!r}")
        if not text or limit <= 0:
            return ""
        if len(text) <= limit:
            clean = self.scrub(text)
        elif keep == "head":
            window = text[: limit + CUT_MARGIN]
            end = window.rfind("\n", limit)
            if end < 0:
                end = _last_separator(window)
            clean = self.scrub(window[: end + 1]) if end >= 0 else ""
        else:
            window = text[-(limit + CUT_MARGIN) :]
            start = window.find("\n", 0, CUT_MARGIN)
            if start < 0:
                start = _first_separator(window)
            clean = self.scrub(window[start:]) if start >= 0 else ""
        if len(clean) <= limit:
            return clean
        return clean[:limit] if keep == "head" else clean[-limit:]

    def scrub_obj(self, obj: Any) -> Any:
        """Scrub strings inside dicts, lists and tuples, recursively; other values are returned as is.

        Dict keys that are strings are scrubbed too, and a value under a sensitive key
        (``password``, ``api_key``, ``token``...) is replaced whole, since a bare value such as
        ``"hunter2"`` carries no format to recognise. A container nested deeper than
        :data:`MAX_OBJ_DEPTH` is replaced whole by the replacement (no ``RecursionError``).

        :param obj: a string, a container of them, or anything else.
        """
        return self._scrub_obj(obj, set(), 0)

    def findings(self, text: str) -> list[Redaction]:
        """Return what :meth:`scrub` would redact in ``text``, in text order, without the secrets.

        :param text: the text to inspect.
        """
        if not text:
            return []
        spans = self._spans(text)
        if not spans:
            return []
        line_starts = [0]
        for line in text.splitlines(keepends=True)[:-1]:
            line_starts.append(line_starts[-1] + len(line))
        return [
            Redaction(
                rule=span.rule,
                line=bisect.bisect_right(line_starts, span.start),
                start=span.start,
                end=span.end,
            )
            for span in spans
        ]

    # ---- internals -----------------------------------------------------------------------

    def _spans(self, text: str) -> list[_Span]:
        """The merged spans of all rules over ``text``, in text order."""
        return list(self._iter_spans(text))

    def _iter_spans(self, text: str) -> Iterator[_Span]:
        """Yield the merged spans of all rules over ``text`` in text order, as they are found.

        Each source (known secrets, PEM blocks, multi-line blocks, the line rules) yields its spans
        in order; they are merged lazily, so memory does not grow with the number of secrets.
        """
        sources: list[Iterator[tuple[int, int, int, int, str, str | None]]] = []
        if self._known:
            present = tuple(v for v in self._known if v in text)
            if present:
                sources.append(
                    (m.start(), -m.end(), 0, n, "known_secret", None)
                    for n, m in enumerate(_literal_regex(present).finditer(text))
                )
        sources.append(
            (start, -end, 1, n, "private_key", marker)
            for n, (start, end, marker) in enumerate(_pem_spans(text, self.replacement))
        )
        sources.append(
            (start, -end, 2, n, "key_value", None) for n, (start, end) in enumerate(_block_spans(text))
        )
        sources.append(
            (start, -end, 2, n, "key_value", None) for n, (start, end) in enumerate(_name_value_spans(text))
        )
        sources.append(
            (start, -end, 2, n, "key_value", None) for n, (start, end) in enumerate(_label_spans(text))
        )
        sources.append(
            (start, -end, 2, n, "key_value", None) for n, (start, end) in enumerate(_jaas_spans(text))
        )
        sources.append(self._line_spans(text))
        last: _Span | None = None
        for start, negative_end, _, _, rule, marker in heapq.merge(*sources):
            end = -negative_end
            if last is not None:
                if start < last.end:
                    if end > last.end:  # partial overlap: one plain mask over both
                        last.end = end
                        last.marker = None
                    continue
                if start == last.end and last.marker is None and marker is None:
                    last.end = end  # adjacent: one mask, not "******"
                    continue
                yield last
            last = _Span(start, end, rule, marker)
        if last is not None:
            yield last

    def _line_spans(self, text: str) -> Iterator[tuple[int, int, int, int, str, str | None]]:
        """The spans of the line rules, line by line, each line's spans in order."""
        for line_match in _LINE_RE.finditer(text):
            line = line_match.group()
            if not line:
                continue
            cuts: list[int] = []
            if len(line) > _LONG_LINE:
                line, cuts, totals = _shorten_runs(line)
            hits = _TRIGGER_SET.Match(line)
            if not hits:
                continue
            offset = line_match.start()
            lowered = _lower_same_length(line)
            found: list[tuple[int, int, int]] = []  # small tuples: a hostile line may hold 400k
            for index in sorted({i for hit in hits for i in _TRIGGER_RULES[hit]}):
                spans = RULES[index].spans(line, lowered, self.replacement)
                found.extend((start, -end, index) for start, end in spans)
            found.sort()
            if cuts:
                found = [
                    (_widen(start, cuts, totals, True), -_widen(-end, cuts, totals, False), i)
                    for start, end, i in found
                ]
            for n, (start, negative_end, index) in enumerate(found):
                yield offset + start, negative_end - offset, 3, n, RULES[index].rule_id, None

    def _scrub_obj(self, obj: Any, active: set[int], depth: int) -> Any:
        """Recursive worker of :meth:`scrub_obj`; ``active`` holds the containers being walked."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if not isinstance(obj, (dict, list, tuple)):
            return obj
        if depth >= MAX_OBJ_DEPTH:
            return self.replacement
        if id(obj) in active:  # a cycle: leave the inner reference alone
            return obj
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                result: dict[Any, Any] = {}
                for key, value in obj.items():
                    new_key = self.scrub(key) if isinstance(key, str) else key
                    if new_key != key and new_key in result:  # two keys scrub alike: keep both
                        new_key = f"{new_key} #{sum(1 for k in result if str(k).startswith(str(new_key)))}"
                    if isinstance(key, str) and self._masks_whole(key, value):
                        result[new_key] = self.replacement
                    else:
                        result[new_key] = self._scrub_obj(value, active, depth + 1)
                return result
            items = [self._scrub_obj(item, active, depth + 1) for item in obj]
            if isinstance(obj, list):
                return items
            if hasattr(obj, "_fields"):  # namedtuple
                return type(obj)(*items)
            return tuple(items)
        finally:
            active.discard(id(obj))

    def _masks_whole(self, key: str, value: Any) -> bool:
        """Return True when a dict value must be replaced whole because of its key."""
        if isinstance(value, bool) or value is None or not is_sensitive_key(key):
            return False
        if isinstance(value, (int, float)):
            return True
        if not isinstance(value, str) or _is_placeholder(value, self.replacement):
            return False
        return not (_normalise_key(key) == "pwd" and value.startswith("/"))


_DEFAULT_SCRUBBER = Scrubber()


def scrub(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with secrets replaced by ``***``; see :class:`Scrubber`.

    :param text: the text to scrub.
    :param known_secrets: exact values to mask as well.
    """
    secrets = tuple(known_secrets)
    scrubber = Scrubber(secrets) if secrets else _DEFAULT_SCRUBBER
    return scrubber.scrub(text)
