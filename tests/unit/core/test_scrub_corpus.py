"""The secret-scrubbing evaluation corpus: well formed, and split by source by the fixed rule.

The corpus lives in ``tests/data/scrub/corpus/`` (see its README). These tests keep it honest;
they do not measure the scrubber (``python bench/scrub.py`` does).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

CORPUS = Path(__file__).resolve().parents[2] / "data" / "scrub" / "corpus"
SPLITS = ("train", "validation")
FORMS = frozenset(
    "cli_flag http_header cookie sql url_userinfo query_param dsn pgpass netrc docker_auth json "
    "json_escaped yaml yaml_block ini env terraform_state k8s_secret private_key vendor_token "
    "webhook_url other".split()
)
#: No single source may hold more than this share of the cases of its split.
SOURCE_CAP = 0.08
MIN_SECRET_LENGTH = 6
#: Batch 1 cases carry no ``batch`` key; every later batch names itself.
BATCHES = frozenset({1, 2, 3, 4, 5, 6, 7})
#: Batches gathered for train only: their sources were checked against the split rule before
#: they were read, and those that fall in validation were skipped unread.
TRAIN_ONLY_BATCHES = frozenset({3, 4, 5, 6, 7})


def source_key(url: str) -> str:
    """The repository (``github.com/owner/name``) of a github.com address, else the host name."""
    parsed = urlparse(url)
    host = parsed.netloc.lower().removeprefix("www.")
    if host == "github.com":
        return "github.com/" + "/".join(parsed.path.strip("/").split("/")[:2]).lower()
    return host


def in_validation(url: str) -> bool:
    digest = hashlib.sha256(source_key(url).encode()).hexdigest()
    return int(digest[:8], 16) % 5 in (0, 1)


def load(split: str) -> list[dict]:
    with (CORPUS / f"{split}.yaml").open(encoding="utf-8") as handle:
        cases = yaml.safe_load(handle)
    assert isinstance(cases, list), f"{split}.yaml is not a top-level list"
    return cases


CASES = {split: load(split) for split in SPLITS}
ALL = [case for split in SPLITS for case in CASES[split]]


def _is_secret_case(case: dict) -> bool:
    return str(case.get("id", "")).startswith("s-")


def batch_of(case: dict) -> int:
    return case.get("batch", 1)


@pytest.mark.parametrize("case", ALL, ids=lambda case: str(case.get("id")))
def test_every_case_follows_the_schema(case):
    assert isinstance(case, dict)
    assert set(case) <= {"id", "source", "form", "text", "secrets", "batch"}
    if "batch" in case:
        assert type(case["batch"]) is int and case["batch"] in BATCHES - {1}
    assert re.fullmatch(r"[sl]-\d{4}", str(case["id"]))
    assert isinstance(case["source"], str) and re.match(r"https?://[^/\s]+", case["source"])
    assert isinstance(case["text"], str) and case["text"].strip()
    if _is_secret_case(case):
        assert case["form"] in FORMS
        assert isinstance(case["secrets"], list) and case["secrets"]
        assert all(isinstance(secret, str) for secret in case["secrets"])
        assert len(set(case["secrets"])) == len(case["secrets"])
    else:
        assert case["form"] in FORMS | {"lookalike"}
        assert not case.get("secrets")


@pytest.mark.parametrize("case", [c for c in ALL if _is_secret_case(c)], ids=lambda case: case["id"])
def test_every_secret_is_in_its_text_and_long_enough(case):
    for secret in case["secrets"]:
        assert secret in case["text"], secret
        assert len(secret) >= MIN_SECRET_LENGTH, secret


def test_ids_are_unique_across_both_splits():
    counts = Counter(case["id"] for case in ALL)
    assert [case_id for case_id, n in counts.items() if n > 1] == []


def test_the_split_follows_the_fixed_rule():
    assert [c["id"] for c in CASES["train"] if in_validation(c["source"])] == []
    assert [c["id"] for c in CASES["validation"] if not in_validation(c["source"])] == []


def test_no_source_is_on_both_sides():
    train = {source_key(case["source"]) for case in CASES["train"]}
    validation = {source_key(case["source"]) for case in CASES["validation"]}
    assert train & validation == set()


def test_a_later_batch_takes_no_source_of_an_earlier_one():
    batches: dict[str, set[int]] = {}
    for case in ALL:
        batches.setdefault(source_key(case["source"]), set()).add(batch_of(case))
    assert {key: sorted(seen) for key, seen in batches.items() if len(seen) > 1} == {}


@pytest.mark.parametrize("split", SPLITS)
def test_batches_are_appended_in_order(split):
    batches = [batch_of(case) for case in CASES[split]]
    assert batches == sorted(batches)


@pytest.mark.parametrize("split", SPLITS)
def test_no_source_holds_more_than_the_cap(split):
    cases = CASES[split]
    counts = Counter(source_key(case["source"]) for case in cases)
    too_big = {key: n for key, n in counts.items() if n > SOURCE_CAP * len(cases)}
    assert too_big == {}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_each_split_and_batch_has_secret_cases_and_lookalikes(split, batch):
    cases = [case for case in CASES[split] if batch_of(case) == batch]
    if split == "validation" and batch in TRAIN_ONLY_BATCHES:
        assert cases == []
        return
    assert any(_is_secret_case(case) for case in cases)
    assert any(not _is_secret_case(case) for case in cases)


def test_no_validation_text_is_in_the_rules_or_their_tests():
    """Rules and their examples are written from train only: no validation secret, and no
    validation line of 30+ characters (PEM markers aside), appears in them."""
    root = CORPUS.parents[3]
    files = [
        root / "airflow_faultcat" / "core" / "scrub.py",
        root / "airflow_faultcat" / "core" / "scrub_formats.py",
        root / "tests" / "unit" / "core" / "test_scrub.py",
        root / "tests" / "data" / "scrub" / "secrets.txt",
        root / "tests" / "data" / "scrub" / "lookalikes.txt",
        root / "dags" / "example_leaky_secrets.py",
    ]
    text = "\n".join(path.read_text(encoding="utf-8") for path in files)
    validation = yaml.safe_load((CORPUS / "validation.yaml").read_text(encoding="utf-8"))
    secrets = {s for case in validation for s in case.get("secrets") or [] if len(s) >= 6 and s in text}
    lines = {
        line.strip()
        for case in validation
        for line in case["text"].splitlines()
        if len(line.strip()) >= 30 and not line.strip().startswith("-----") and line.strip() in text
    }
    assert not secrets and not lines
