"""Hypothesis strategies for text that holds secrets, in the shapes logs write them."""

from __future__ import annotations

import base64
import string

from hypothesis import strategies as st

from tests.unit.fuzz.logs import any_text

ALNUM = string.ascii_letters + string.digits
#: A secret value: letters, digits and punctuation, never ``*`` (the mask is made of it).
secret_values = st.text(ALNUM + "!#$%+-./:=?@^_~", min_size=6, max_size=40)

SENSITIVE_KEYS = [
    "password",
    "api_key",
    "token",
    "client_secret",
    "AIRFLOW__CORE__FERNET_KEY",
    "PGPASSWORD",
    "aws_secret_access_key",
    "--password",
    "X-Api-Key",
]
OPERATORS = ["=", ": ", ":", " = ", "=>", ":="]


@st.composite
def key_values(draw: st.DrawFn) -> str:
    key, op, value = (
        draw(st.sampled_from(SENSITIVE_KEYS)),
        draw(st.sampled_from(OPERATORS)),
        draw(secret_values),
    )
    quote = draw(st.sampled_from(["", '"', "'"]))
    return f"{key}{op}{quote}{value}{quote}"


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["postgresql", "https", "redis", "amqp", "mysql+pymysql"]))
    user = draw(st.text(ALNUM, min_size=1, max_size=8))
    password = draw(st.text(ALNUM + "!$%-._~", min_size=1, max_size=20))
    return f"{scheme}://{user}:{password}@db.example.com:5432/airflow"


@st.composite
def tokens(draw: st.DrawFn) -> str:
    body = draw(st.text(ALNUM, min_size=40, max_size=40))
    kind = draw(st.sampled_from(["ghp", "akia", "xoxb", "bearer", "basic", "glpat", "hf", "sk"]))
    if kind == "ghp":
        return "ghp_" + body[:36]
    if kind == "akia":
        return "AKIA" + body[:16].upper()
    if kind == "xoxb":
        return f"xoxb-{body[:11]}-{body[11:24]}-{body[24:]}"
    if kind == "bearer":
        return "Authorization: Bearer " + body
    if kind == "basic":
        return "Authorization: Basic " + base64.b64encode(f"etl:{body[:12]}".encode()).decode()
    if kind == "glpat":
        return "glpat-" + body[:20]
    if kind == "hf":
        return "hf_" + body[:34]
    return "sk-proj-" + body


@st.composite
def pem_blocks(draw: st.DrawFn, end: bool | None = None) -> str:
    """A private key block, its lines broken by newlines, escaped newlines or spaces; ``end``:
    whether the END line is there (``None``: either)."""
    label = draw(st.sampled_from(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "]))
    body = draw(st.lists(st.text(ALNUM + "+/", min_size=8, max_size=64), min_size=0, max_size=4))
    newline = draw(st.sampled_from(["\n", "\\n", " "]))
    if end is None:
        end = draw(st.booleans())
    text = f"-----BEGIN {label}PRIVATE KEY-----" + newline + newline.join(body)
    if end:
        text += newline + f"-----END {label}PRIVATE KEY-----"
    return text


secret_lines = st.one_of(key_values(), urls(), tokens(), pem_blocks())

#: Text with and without secrets, as one line or several.
texts_with_secrets = st.lists(st.one_of(secret_lines, any_text), max_size=8).flatmap(
    lambda parts: st.sampled_from(["\n", " ", "", "\r\n", "\\n"]).map(lambda sep: sep.join(parts))
)
