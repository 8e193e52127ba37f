from __future__ import annotations

import textwrap

import pytest

from airflow_faultcat.core.patterns.loader import PatternLibraryError, load_library, validate_files


def test_broken_file_lists_file_pattern_id_and_problem(data_dir):
    broken = data_dir / "patterns" / "broken.yaml"
    count, problems = validate_files([broken])
    messages = [str(p) for p in problems]
    assert all(m.startswith(str(broken)) for m in messages)
    assert any("broken_001: RE2 rejects regex 'foo(bar'" in m for m in messages)
    assert any("broken_002: category: Input should be" in m for m in messages)
    assert any("broken_004: colour: unknown key" in m for m in messages)
    with pytest.raises(PatternLibraryError) as info:
        load_library([broken], include_builtin=False)
    assert "broken_001" in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("patterns:\n  - pattern_id: x_001\n    regexes: ['unclosed\n")
    _, problems = validate_files([bad])
    assert len(problems) == 1
    assert "not valid YAML (line" in str(problems[0])


def test_user_file_overrides_by_id_and_adds(tmp_path, data_dir, mini_library):
    user = tmp_path / "site.yaml"
    user.write_text(
        textwrap.dedent("""
        family: site
        patterns:
          - pattern_id: mini_002
            category: SERVICE_DEPENDENCY
            severity: high
            regexes: ['Connection refused']
            description: Our db refuses connections during its nightly restart.
            examples: ['Connection refused']
            counterexamples: ['ok']
          - pattern_id: site_001
            category: STATE_MISMATCH
            severity: medium
            regexes: ['batch [0-9]+ already loaded']
            description: The batch was loaded by an earlier run.
            examples: ['batch 42 already loaded']
            counterexamples: ['batch 42 loaded']
    """)
    )
    mini = data_dir / "patterns" / "mini.yaml"
    library = load_library([mini, user], include_builtin=False)
    assert len(library) == len(mini_library) + 1
    assert library.get("mini_002").category.value == "SERVICE_DEPENDENCY"
    assert [p.pattern_id for p in library.patterns].index("mini_002") == 1  # replaced in place
    assert library.get("site_001").category.value == "STATE_MISMATCH"
    assert library.sources["site_001"] == str(user)


def test_user_override_replaces_a_shipped_pattern_in_place(tmp_path):
    shipped = load_library()
    target = shipped.patterns[0]
    user = tmp_path / "override.yaml"
    user.write_text(
        textwrap.dedent(f"""
        family: site
        patterns:
          - pattern_id: {target.pattern_id}
            category: STATE_MISMATCH
            severity: low
            regexes: ['site specific text']
            description: Replaced by the site.
            examples: ['site specific text']
            counterexamples: ['other text']
    """)
    )
    library = load_library([user])
    assert len(library) == len(shipped)
    assert library.patterns[0].description == "Replaced by the site."
    assert library.sources[target.pattern_id] == str(user)


def test_missing_user_path_is_reported(tmp_path):
    with pytest.raises(PatternLibraryError, match="no such file"):
        load_library([tmp_path / "nope.yaml"], include_builtin=False)


def test_user_redos_pattern_is_accepted_and_safe(tmp_path):
    from airflow_faultcat.core.diagnose import Analyzer

    user = tmp_path / "redos.yaml"
    user.write_text(
        textwrap.dedent("""
        family: redos
        patterns:
          - pattern_id: redos_001
            category: CONFIGURATION
            severity: low
            regexes: ['(a+)+$']
            description: A regex that hangs backtracking engines.
            examples: ['aaaa']
            counterexamples: ['bbbb!']
    """)
    )
    analyzer = Analyzer(load_library([user], include_builtin=False))
    diagnosis = analyzer.diagnose(("a" * 30 + "!\n") * 2000)
    assert diagnosis.stats.duration_ms < 2000


def _pattern_file(tmp_path, regex: str, extra: str = "") -> object:
    path = tmp_path / "user.yaml"
    path.write_text(
        "family: user\ndescription: d\n" + extra + "patterns:\n  - pattern_id: user_001\n"
        "    category: NETWORK\n    severity: low\n    regexes: ['" + regex + "']\n"
        "    description: d\n    examples: ['x']\n    counterexamples: ['y']\n"
    )
    return path


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    # A few lines of anchors expand to gigabytes once constructed.
    bomb = "".join(f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n" for i in range(1, 30))
    path = _pattern_file(tmp_path, "x", extra="x0: &a0 [lol]\n" + bomb)
    _, problems = validate_files([path])
    assert [p.message for p in problems] == [
        "YAML anchors and aliases (&, *) are not allowed in pattern files"
    ]


def test_deeply_nested_or_huge_regexes_and_files_are_refused(tmp_path):
    _, problems = validate_files([_pattern_file(tmp_path, "(" * 1000 + "x" + ")" * 1000)])
    assert any("nests groups more than 32 deep" in p.message for p in problems)
    big = tmp_path / "big.yaml"
    with big.open("wb") as out:
        out.truncate(5 << 20)
    _, problems = validate_files([big])
    assert "a pattern file is at most" in problems[0].message
