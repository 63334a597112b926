"""Kazoo's whitelist semantics on RE2."""

from __future__ import annotations

import pytest

from c2c_ari.domain import whitelist
from c2c_ari.domain.errors import ValidationFailed


@pytest.mark.parametrize("patterns", [None, []])
def test_empty_allows_all(patterns: list[str] | None) -> None:
    assert whitelist.allows(patterns, "+14155551234")
    whitelist.check(patterns, "+14155551234")


def test_search_is_unanchored() -> None:
    assert whitelist.allows(["555"], "+14155551234")
    assert whitelist.allows(["1234$"], "+14155551234")
    assert not whitelist.allows([r"^\+1555"], "+14155551234")
    assert whitelist.allows([r"^\+1415"], "+14155551234")


def test_any_entry_matches() -> None:
    patterns = [r"^\+44", r"^\+1415", r"^\+33"]
    assert whitelist.allows(patterns, "+14155551234")
    assert whitelist.allows(patterns, "+33123456789")
    assert not whitelist.allows(patterns, "+4930123456")


def test_invalid_stored_pattern_counts_as_no_match() -> None:
    assert not whitelist.allows(["(a)\\1", "(?=x)", "["], "+14155551234")
    assert whitelist.allows(["[", r"^\+1"], "+14155551234")


def test_non_string_entries_never_match() -> None:
    assert not whitelist.allows([5, None, {"a": 1}], "+14155551234")  # type: ignore[list-item]
    assert whitelist.allows([5, "4155"], "+14155551234")  # type: ignore[list-item]


def test_pathological_pattern_returns() -> None:
    contact = "a" * 63 + "b"
    assert not whitelist.allows(["(a+)+$", "(a|aa)+$", "(a*)*c"], contact)
    assert whitelist.allows(["(a+)+b$"], contact)


def test_check_raises_kazoo_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        whitelist.check([r"^\+44"], "+14155551234")
    assert caught.value.message == "Contact doesn't match whitelist"
    assert caught.value.errors == {
        "contact": {
            "whitelist": {"message": "Contact doesn't match whitelist", "value": "+14155551234"}
        }
    }


def test_compile_pattern_reports_re2_reason() -> None:
    with pytest.raises(ValueError, match="invalid escape sequence"):
        whitelist.compile_pattern("(a)\\1")
    with pytest.raises(ValueError, match="printable ASCII"):
        whitelist.compile_pattern("\ud800")
    with pytest.raises(ValueError, match="printable ASCII"):
        whitelist.compile_pattern("^\\+49\u00e9")
    assert whitelist.compile_pattern("^a$").search(b"a") is not None


def test_a_pattern_too_large_is_refused_and_remembered() -> None:
    # \pL{300} took ~95 ms to compile on the event loop; now it fits or is refused at once,
    # and a refusal is not compiled again.
    hostile = r"\w{1000}\w{1000}"
    with pytest.raises(ValueError, match="pattern too large"):
        whitelist.compile_pattern(hostile)
    assert isinstance(whitelist._CACHE.get(hostile), ValueError)


def test_the_pattern_cache_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = whitelist._PatternCache(limit=10 * whitelist.MAX_MEM)
    monkeypatch.setattr(whitelist, "_CACHE", cache)
    for n in range(200):
        whitelist.compile_pattern(f"^\\+{n}")
    assert cache.used <= cache.limit
    assert len(cache._entries) < 200
    # the most recent ones are still there
    assert whitelist._CACHE.get("^\\+199") is not None


def test_a_whitelist_has_a_budget_as_a_whole() -> None:
    small = [f"^\\+{n}[0-9]{{6,12}}$" for n in range(100)]
    whitelist.check_budget(small)
    heavy = ["(a|b|c|d){500}"] * 100
    with pytest.raises(ValidationFailed) as caught:
        whitelist.check_budget(heavy)
    assert "maxProgramSize" in caught.value.errors["whitelist"]


@pytest.mark.parametrize("pattern", [r"\pL", r"(?i)\p{Any}", r"[\PN]", r"^\+1\p{Greek}"])
def test_unicode_classes_are_refused(pattern: str) -> None:
    # Meaningless for ASCII contacts, and with (?i) each \p{Any} took 25 ms to compile.
    with pytest.raises(ValueError, match="Unicode classes"):
        whitelist.compile_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"\\pL", r"[\\p]", r"^\+1\\P"])
def test_an_escaped_backslash_before_p_is_no_unicode_class(pattern: str) -> None:
    whitelist.compile_pattern(pattern)


def test_a_costly_whitelist_is_refused_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = whitelist.program_size

    def counting(pattern: str) -> int:
        compiled.append(pattern)
        return real(pattern)

    monkeypatch.setattr(whitelist, "program_size", counting)
    heavy = [f"(a|b|c|d){{{500 + n}}}" for n in range(100)]
    with pytest.raises(ValidationFailed) as caught:
        whitelist.check_budget(heavy)
    assert "maxProgramSize" in caught.value.errors["whitelist"]
    assert len(compiled) < 20  # it stopped as soon as the total was past the budget
    # and a list that is slow to compile is refused by the time it takes
    monkeypatch.setattr(whitelist, "COMPILE_BUDGET", 0.0)
    with pytest.raises(ValidationFailed) as caught:
        whitelist.check_budget([r"^\+1"])
    assert "maxCompileTime" in caught.value.errors["whitelist"]
