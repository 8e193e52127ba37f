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
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

import re2
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import DENYLIST as KEYWORD_DENYLIST
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector

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
        "n/a",
        "%s",
        "?",
        "{}",
    }
)
# ${VAR}, $DB_PASSWORD, {{ var }}, %(var)s, <your-token>: references to a secret, not the secret.
# Only an upper-case $NAME counts: "$uperS3cret" is a password.
_PLACEHOLDER_RE = re.compile(
    r"\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|\{\{.*\}\}|%\([A-Za-z_]\w*\)s|<[^<>]*>|\$\([^)]*\)"
)


def _is_placeholder(value: str, replacement: str = _DEFAULT_REPLACEMENT) -> bool:
    """Return True when ``value`` is already masked, empty or a reference such as ``${DB_PASS}``.

    :param value: the candidate secret value.
    :param replacement: the scrubber's own replacement, which must never be masked again.
    """
    stripped = value.strip().strip("\"'")
    if stripped.lower() in _PLACEHOLDER_WORDS or stripped == replacement:
        return True
    # "***", "********", "xxxxxxxx": masks and fill-ins, not secrets.
    if len(set(stripped.lower())) == 1 and stripped[0] in "*xX#.-•":
        return True
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


# A k8s-style name ("airflow-db-secret", "worker.pool-2"): words, not a credential.
_NAME_LIKE_RE = re.compile(r"[a-z]+(?:[-_.][a-z0-9]+)*")


def _looks_random(value: str) -> bool:
    """Return True when an unquoted value after a generic key (``token: X``) looks like a credential.

    Used only where the key alone is weak evidence, e.g. ``Using secret: airflow-connections``.

    :param value: the candidate value.
    """
    if len(value) < 8 or _NAME_LIKE_RE.fullmatch(value):
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


def _not_digits(value: str) -> bool:
    """Return True unless ``value`` is a number (``-u 50000:0`` is a uid:gid, not a password).

    :param value: the candidate password.
    """
    return not value.isdigit()


# --------------------------------------------------------------------------------------------
# Sensitive key names (key=value, "key": "value", --key value, dict keys in scrub_obj)
# --------------------------------------------------------------------------------------------

# detect-secrets' KeywordDetector list (api_?key, private_?key, db_?pass, password, pwd, secret...)
# plus names it lacks. Matched against the *end* of the normalised key: "fernet_key" and
# "aws_secret_access_key" are secrets, "password_file" and "token_type" are not.
_STRONG_KEY_WORDS = (
    *KEYWORD_DENYLIST,
    "passphrase",
    "access_?key",
    "secret_?key",
    "fernet_?key",
    "signing_?key",
    "encryption_?key",
    "master_?key",
    "shared_?key",
    "shared_?access_?key",
    "app_?key",
    "subscription_?key",
    "storage_?key",
    "session_?key",
    "routing_?key",
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
)
_STRONG_KEY_RE = re.compile(r"(?:^|_)(?:" + "|".join(_STRONG_KEY_WORDS) + r")$")
# Suffix without a word boundary: PGPASSWORD, clientsecret, accesstoken, x_vault_token.
_GENERIC_KEY_RE = re.compile(r"(?:password|passwd|secret|token)$")
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
        "cancellation_token",
        "cancel_token",
        # Handled by the authorization_header rule, which keeps the scheme visible.
        "authorization",
        "proxy_authorization",
    }
)
_CAMEL_RE = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")


def _normalise_key(key: str) -> str:
    """Turn ``--conn-password``, ``"SecretAccessKey"`` or ``fs.s3a.secret.key`` into snake case.

    :param key: the raw key as written.
    """
    key = _CAMEL_RE.sub(r"\1_\2", key.strip("-\"'"))
    return _NON_ALNUM_RE.sub("_", key.lower()).strip("_")


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
    if norm in ("token", "secret"):
        return 1
    if _STRONG_KEY_RE.search(norm) or norm.endswith(("password", "passwd")):
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
    :param triggers: lower-case literals; the rule runs on a line only if one occurs in it.
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
            value = line[start:end]
            if start == end or _is_placeholder(value, replacement):
                continue
            if self.check is not None and not self.check(value):
                continue
            yield start, end


_KEY_CHARS = _WORD_CHARS | frozenset(".-")
_KEY_TAIL_RE = re.compile(r"[\w.\-]{0,100}")
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
    :param value_pattern: the value, as group ``dq``, ``sq`` or ``eq`` (double, single or
        backslash-escaped double quotes, without the quotes) or ``bare`` (unquoted).
    """

    key_pattern: re.Pattern[str] | None = None
    op_pattern: re.Pattern[str] | None = None
    value_pattern: re.Pattern[str] | None = None

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
            key_start = word.start()
            while not _edge_before(line, key_start, _KEY_CHARS) and word.start() - key_start < _MAX_KEY:
                key_start -= 1
            key_end = _KEY_TAIL_RE.match(line, word.end()).end()  # type: ignore[union-attr]
            done = key_end
            if not _edge_before(line, key_start, _KEY_CHARS) or (
                key_end < len(line) and line[key_end] in _KEY_CHARS
            ):
                continue  # longer than _MAX_KEY: not a key name
            if line[max(0, key_start - 2) : key_start] == "//":
                continue  # URL userinfo ("https://x-access-token:T@host"): the url_password rule
            key = line[key_start:key_end]
            strength = _key_strength(key)
            if not strength or key_pattern.fullmatch(key) is None:
                continue
            op = op_pattern.match(line, key_end)
            if op is None:
                continue
            value_match = value_pattern.match(line, op.end())
            if value_match is None:
                continue
            group = next(g for g in ("dq", "sq", "eq", "bare") if value_match.start(g) >= 0)
            start, end = value_match.span(group)
            done = max(done, end)
            value = value_match.group(group)
            if start == end or _is_placeholder(value, replacement):
                continue
            # $PWD in env dumps is the working directory.
            if _normalise_key(key) == "pwd" and value.startswith("/"):
                continue
            operator = op.groupdict().get("op") or "="
            if strength == 1 and group == "bare" and operator == ":" and not _looks_random(value):
                continue
            yield start, end


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
# A double-, single- or backslash-escaped double-quoted value, as groups "dq", "sq" and "eq".
_QUOTED = (
    r""""(?P<dq>(?:[^"\\\r\n]|\\.)*)"|'(?P<sq>(?:[^'\\\r\n]|\\.)*)'"""
    r"""|\\"(?P<eq>(?:[^\\\r\n]|\\[^"\r\n])*)\\\""""
)
# A backslash, unless it starts an escape of a JSON-encoded log ("\n", "\t", '\"'): the value
# ends there, or "Bearer X\nAuthorization: Y" in a JSON string would hide the second header.
_NOT_ESCAPE = r"\\(?![nrt\"])"
_GITLAB_TRIGGERS = ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-", "glptt-")
_GITLAB_TRIGGERS += ("glagent-", "gloas-")
_KV_WORDS_RE = re.compile(r"pass|pwd|secret|token|key|contrase|signature")

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
    SecretRule(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        _ds(GitHubTokenDetector.denylist[0]),
        not_after=_TOKEN_EDGE,
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
    # detect-secrets' JWT regex stops before the signature (lazy tail); its validity check is used.
    SecretRule(
        "jwt",
        ("eyj",),
        re.compile(r"eyJ[A-Za-z0-9_\-]{4,}={0,2}\.[A-Za-z0-9_\-]{2,}={0,2}(?:\.[A-Za-z0-9_\-+/]*={0,2})?"),
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
    # Legacy "s.<24>" tokens look like many things; only on lines that mention Vault.
    SecretRule(
        "vault_token",
        ("vault",),
        re.compile(r"[sb]\.[A-Za-z0-9]{24}(?![\w\-])"),
        check=_mixed,
        not_after=_PATH_EDGE,
    ),
    # ---- URLs and HTTP -----------------------------------------------------------------------
    # scheme://user:password@host; the password may hold "@" (the last one before the host wins).
    SecretRule(
        "url_password",
        ("://",),
        re.compile(r"://(?<=[A-Za-z0-9+.\-]://)[^\s:/?#@'\"<>]*:(?P<pw>[^\s/?#'\"<>]*)@"),
        groups=("pw",),
    ),
    SecretRule(
        "authorization_header",
        ("authori",),
        re.compile(
            r"authori[sz]ation[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?:bearer|basic|token|apikey|api-key|key|jwt|otp|sso-key|splunk|bot)\s+(?P<tok>(?:[^\s\"',;\\]|"
            + _NOT_ESCAPE
            + r")+)"
            r"|(?:(?:aws4-hmac-sha256|digest|negotiate|ntlm|hmac|sharedkey|sharedkeylite|signature)\s+)?"
            r"(?P<rest>[^\s\"'\\](?:(?:[^\"'\r\n\\]|" + _NOT_ESCAPE + r")*[^\s\"'\\])?))"
        ),
        groups=("tok", "rest"),
        check=lambda value: value.lower() not in ("bearer", "basic", "token", "digest", "negotiate"),
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
    # ---- key = value -------------------------------------------------------------------------
    # password=X, "api_key": "X", 'secret': 'X', AIRFLOW__CORE__FERNET_KEY=X, --password=X,
    # X-Api-Key: X, {\"password\": \"X\"} (JSON inside a JSON string).
    KeyValueRule(
        "key_value",
        ("pass", "pwd", "secret", "token", "key", "contrase", "signature"),
        _KV_WORDS_RE,
        key_pattern=re.compile(r"-{0,2}[A-Za-z_][\w.\-]*"),
        op_pattern=re.compile(r"(?:\\?[\"'])?\]?[ \t]*(?P<op>:=|=>|=|:(?!//))[ \t]*"),
        value_pattern=re.compile(
            _QUOTED + r"|(?P<bare>\$\{[^}\s]*\}|(?:[^\s\"'`,;&|<>(){}\[\]\\]|" + _NOT_ESCAPE + r")+)"
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
    ),
    # curl -u user:password (wget --user=u --password=p is a key=value pair)
    SecretRule(
        "cli_flag",
        ("-u ", "--user "),
        re.compile(r"-(?:u|-user)[ \t]+[\"']?[^\s:\"']+:(?P<v>[^\s\"']+)"),
        groups=("v",),
        check=_not_digits,
        not_after=_WORD_CHARS | frozenset("-"),
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
        else:
            body = _PEM_TRUNCATED_BODY_RE.match(text, begin.end())
            stop = body.end() if body is not None else begin.end()
            yield begin.start(), max(stop, begin.end()), f"{header} {replacement}"
            position = max(stop, begin.end())


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
            by_trigger.setdefault(trigger.lower(), []).append(index)
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    trigger_set = re2.Set.SearchSet(options)
    rule_indexes: list[tuple[int, ...]] = []
    for trigger, indexes in by_trigger.items():
        trigger_set.Add(re.escape(trigger))
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
            if len(secret) < MIN_KNOWN_SECRET_LENGTH or _is_placeholder(secret, replacement):
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
        spans = self._spans(text)
        if not spans:
            return text
        pieces: list[str] = []
        position = 0
        for span in spans:
            pieces.append(text[position : span.start])
            pieces.append(span.marker if span.marker is not None else self.replacement)
            position = span.end
        pieces.append(text[position:])
        return "".join(pieces)

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
        """Collect the spans of all rules over ``text`` and merge overlapping ones."""
        found: list[tuple[int, int, int, _Span]] = []  # (start, -end, order, span) for sorting
        order = 0

        def add(start: int, end: int, rule: str, marker: str | None = None) -> None:
            nonlocal order
            found.append((start, -end, order, _Span(start, end, rule, marker)))
            order += 1

        if self._known:
            present = tuple(v for v in self._known if v in text)
            if present:
                for match in _literal_regex(present).finditer(text):
                    add(match.start(), match.end(), "known_secret")

        for start, end, marker in _pem_spans(text, self.replacement):
            add(start, end, "private_key", marker)

        offset = 0
        for line in text.splitlines(keepends=True):
            hits = _TRIGGER_SET.Match(line)
            if hits:
                lowered = _lower_same_length(line)
                for index in sorted({i for hit in hits for i in _TRIGGER_RULES[hit]}):
                    rule = RULES[index]
                    for start, end in rule.spans(line, lowered, self.replacement):
                        add(offset + start, offset + end, rule.rule_id)
            offset += len(line)

        if not found:
            return []
        found.sort(key=lambda item: item[:3])
        merged: list[_Span] = []
        for _, _, _, span in found:
            if merged:
                last = merged[-1]
                if span.start < last.end:
                    if span.end > last.end:  # partial overlap: one plain mask over both
                        last.end = span.end
                        last.marker = None
                    continue
                if span.start == last.end and last.marker is None and span.marker is None:
                    last.end = span.end  # adjacent: one mask, not "******"
                    continue
            merged.append(_Span(span.start, span.end, span.rule, span.marker))
        return merged

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
