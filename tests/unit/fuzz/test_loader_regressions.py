"""Regressions found by fuzzing pattern loading (tests/unit/fuzz/test_fuzz_patterns.py)."""

from __future__ import annotations

import time
import tracemalloc
from unittest import mock

import pytest
import yaml

from airflow_faultcat.core.patterns import loader
from airflow_faultcat.core.patterns.loader import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_PROBLEMS,
    MAX_PROGRAM_TOTAL,
    PatternLibraryError,
    load_library,
)


def test_top_level_keys_of_mixed_types_are_listed_not_a_type_error(tmp_path):
    # YAML keys may be numbers or null; sorting them with strings raised TypeError.
    path = tmp_path / "user.yaml"
    path.write_text("1: x\n~: y\nfoo: z\npatterns: [0]\n")
    with pytest.raises(PatternLibraryError) as info:
        load_library([path], include_builtin=False)
    assert "unknown top-level key(s): [1, None, 'foo']" in str(info.value)


def _refused(path) -> PatternLibraryError:
    with pytest.raises(PatternLibraryError) as info:
        load_library([path], include_builtin=False)
    return info.value


def test_a_file_of_many_small_values_is_refused_before_it_is_built(tmp_path):
    # 2 MB of "0, " is a million YAML values: loading them took 30 s and 360 MiB.
    path = tmp_path / "user.yaml"
    path.write_text("patterns: [" + "0, " * 700_000 + "0]\n")
    tracemalloc.start()
    try:
        problems = _refused(path).problems
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p.message for p in problems] == [
        f"more than {MAX_NODES} YAML values; a pattern file holds at most {MAX_NODES}"
    ]
    assert peak < 32 << 20


def test_the_problems_of_one_file_are_listed_up_to_a_limit(tmp_path):
    # 20,000 empty patterns made 140,000 problems (seven missing fields each) and a 10 MB message.
    path = tmp_path / "user.yaml"
    path.write_text("patterns: [" + "{}, " * 20_000 + "{}]\n")
    problems = _refused(path).problems
    assert len(problems) <= MAX_PROBLEMS + 10
    assert problems[-1].message == f"stopped after {MAX_PROBLEMS} problems; fix these first"


@pytest.mark.parametrize("yaml_loader", ["libyaml", "python"])
def test_deep_nesting_is_refused_by_either_yaml_loader(tmp_path, yaml_loader):
    # Without libyaml, PyYAML builds nested values recursively: 3,000 levels raised RecursionError.
    path = tmp_path / "user.yaml"
    path.write_text("patterns: " + "[" * 3_000 + "]" * 3_000 + "\n")
    chosen = yaml.SafeLoader if yaml_loader == "python" else loader._Loader
    with mock.patch.object(loader, "_Loader", chosen):
        problems = _refused(path).problems
    # libyaml's scanner may stop first ("exceeded maximum nesting depth"): either says why.
    assert len(problems) == 1 and "nest" in problems[0].message
    if yaml_loader == "python":
        assert problems[0].message == f"lists and mappings nested more than {MAX_DEPTH} deep"


@pytest.mark.parametrize(
    "pattern",
    [
        '{pattern_id: user_001, category: NETWORK, severity: low, regexes: ["\\ud800"], description: d,'
        " examples: [x], counterexamples: [y]}",
        '{pattern_id: user_001, category: NETWORK, severity: low, regexes: [x], description: "\\udfff",'
        " examples: [x], counterexamples: [y]}",
    ],
    ids=["regex", "description"],
)
def test_a_lone_surrogate_is_a_problem_with_the_pure_python_yaml_loader(tmp_path, pattern):
    # libyaml refuses "\ud800"; PyYAML's own loader reads it, and encoding the regex raised
    # UnicodeEncodeError (a description loaded, to fail when a diagnosis was written out).
    path = tmp_path / "user.yaml"
    path.write_text(f"patterns:\n  - {pattern}\n")
    with mock.patch.object(loader, "_Loader", yaml.SafeLoader):
        problems = _refused(path).problems
    assert len(problems) == 1 and problems[0].message.startswith("not valid Unicode (a lone surrogate")


def _file_of_regexes(tmp_path, regexes: list[str]):
    path = tmp_path / "user.yaml"
    lines = ["patterns:"]
    for i, regex in enumerate(regexes):
        lines.append(
            f"  - {{pattern_id: heavy_{i:03d}, category: NETWORK, severity: low, description: d,"
            f" regexes: ['{regex}'], examples: ['a{i}'], counterexamples: ['#']}}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_regexes_far_too_large_for_re2_are_refused_without_compiling_them_whole(tmp_path):
    # RE2 compiled each \pL{1000} whole (1.2 million instructions, 0.7 s) before its size was
    # checked: 30 of them in a 4 KB file took 20 s to refuse.
    path = _file_of_regexes(tmp_path, [rf"\pL{{1000}}{i}" for i in range(30)])
    start = time.perf_counter()
    problems = _refused(path).problems
    assert time.perf_counter() - start < 10
    assert len(problems) == 30
    assert all("is too large for RE2" in p.message for p in problems)


def test_the_regexes_of_one_file_compile_to_a_bounded_program_in_all(tmp_path):
    # Each regex is under the size limit, together they are over what one file may cost to compile.
    path = _file_of_regexes(tmp_path, [f".{{0,500}}(?:a|b).{{0,500}}{i}" for i in range(40)])
    problems = _refused(path).problems
    assert len(problems) == 1
    assert problems[0].message.startswith(f"the regexes compile to more than {MAX_PROGRAM_TOTAL} RE2")
