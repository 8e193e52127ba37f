"""Regressions found by fuzzing pattern loading (tests/unit/fuzz/test_fuzz_patterns.py)."""

from __future__ import annotations

import pytest

from airflow_faultcat.core.patterns.loader import PatternLibraryError, load_library


def test_top_level_keys_of_mixed_types_are_listed_not_a_type_error(tmp_path):
    # YAML keys may be numbers or null; sorting them with strings raised TypeError.
    path = tmp_path / "user.yaml"
    path.write_text("1: x\n~: y\nfoo: z\npatterns: [0]\n")
    with pytest.raises(PatternLibraryError) as info:
        load_library([path], include_builtin=False)
    assert "unknown top-level key(s): [1, None, 'foo']" in str(info.value)
