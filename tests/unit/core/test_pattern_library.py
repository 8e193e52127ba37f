"""The shipped pattern library: every pattern's examples and counterexamples, ids and coverage."""

from __future__ import annotations

import pytest

from airflow_faultcat.core.models import Category
from airflow_faultcat.core.patterns.loader import (
    builtin_files,
    check_patterns,
    load_library,
    read_pattern_file,
)

LIBRARY = load_library()
SEEDS = {
    "virsh_001": Category.VIRTUALIZATION,
    "libvirt_001": Category.VIRTUALIZATION,
    "network_001": Category.NETWORK,
    "registry_001": Category.SERVICE_DEPENDENCY,
    "disk_001": Category.STORAGE,
    "credential_001": Category.CREDENTIAL,
    "vault_001": Category.SERVICE_DEPENDENCY,
    "timeout_001": Category.TIMEOUT,
    "airflow_001": Category.CONFIGURATION,
    "kcli_001": Category.VIRTUALIZATION,
}


def test_library_has_at_least_200_patterns():
    assert len(LIBRARY) >= 200


@pytest.mark.parametrize("pattern", LIBRARY.patterns, ids=lambda p: p.pattern_id)
def test_examples_match_and_counterexamples_do_not(pattern):
    assert check_patterns([pattern], LIBRARY.sources[pattern.pattern_id]) == []


@pytest.mark.parametrize("pattern_id", sorted(SEEDS))
def test_seed_ids_keep_their_meaning(pattern_id):
    pattern = LIBRARY.get(pattern_id)
    assert pattern is not None, f"{pattern_id} is missing"
    assert pattern.category is SEEDS[pattern_id]


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.name)
def test_each_file_is_one_family_and_clean(path):
    patterns, problems = read_pattern_file(path)
    assert problems == []
    assert patterns


def test_every_category_is_covered():
    covered = {p.category for p in LIBRARY.patterns}
    assert covered == set(Category) - {Category.UNKNOWN}


def test_every_pattern_tells_what_to_do():
    missing = [p.pattern_id for p in LIBRARY.patterns if not (p.recovery_hint and p.remediation)]
    assert missing == []


def test_each_example_is_diagnosed_as_its_own_category():
    """An example line alone must come out as its pattern's category (or a pattern it agrees with)."""
    from airflow_faultcat.core.diagnose import Analyzer

    analyzer = Analyzer(LIBRARY)
    wrong = []
    total = 0
    for pattern in LIBRARY.patterns:
        for example in pattern.examples:
            total += 1
            diagnosis = analyzer.diagnose(example + "\n")
            if diagnosis.root_cause is not pattern.category:
                wrong.append((pattern.pattern_id, diagnosis.root_cause.value, example[:80]))
    # Some example lines legitimately carry a stronger signal of another category.
    assert len(wrong) <= total * 0.1, wrong[:20]
