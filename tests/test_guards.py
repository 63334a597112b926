"""tests/guards.py, proven on small test files run by a separate pytest process: in CI every
kind of skip fails the run and an xfail does not; elsewhere the skips are summed up."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SKIPS_IN_CI = {
    "skip_in_test": """
        import pytest

        def test_passes():
            pass

        def test_skips():
            pytest.skip("no coffee")
        """,
    "module_level_skip": """
        import pytest

        pytest.skip("no coffee", allow_module_level=True)

        def test_never_collected():
            pass
        """,
    "skipif_mark": """
        import pytest

        pytestmark = pytest.mark.skipif(True, reason="no coffee")

        def test_skipped_by_mark():
            pass
        """,
    "importorskip": """
        import pytest

        pytest.importorskip("c2c_ari_no_such_module", reason="no coffee")

        def test_never_collected():
            pass
        """,
    "skip_in_fixture": """
        import pytest

        @pytest.fixture
        def coffee():
            pytest.skip("no coffee")

        def test_needs_coffee(coffee):
            pass
        """,
}

XFAILS = """
    import pytest

    @pytest.mark.xfail(reason="known bug")
    def test_known_bug():
        assert False

    @pytest.mark.xfail(reason="not run", run=False)
    def test_not_run():
        assert False

    def test_imperative_xfail():
        pytest.xfail("known bug")

    def test_passes():
        pass
    """


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`run(source, ci=...)`: a separate pytest process on one test file, with the guard loaded
    as tests/conftest.py loads it and no other plugin."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run_pytest(source: str, *, ci: str | None) -> pytest.RunResult:
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        pytester.makepyfile(test_tiny=source)
        return pytester.runpytest_subprocess("-p", "tests.guards", "-rA")

    return run_pytest


@pytest.mark.parametrize("case", SKIPS_IN_CI)
def test_any_skip_fails_a_ci_run(run, case: str) -> None:  # type: ignore[no-untyped-def]
    result = run(SKIPS_IN_CI[case], ci="true")
    assert result.ret != pytest.ExitCode.OK, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert "skipped" not in outcomes
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == 1
    result.stdout.fnmatch_lines(["*skipped in CI, which counts as a failure: no coffee*"])


def test_xfail_does_not_fail_a_ci_run(run) -> None:  # type: ignore[no-untyped-def]
    result = run(XFAILS, ci="true")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1, xfailed=3)


@pytest.mark.parametrize("ci", [None, "", "0", "false", "No"])
def test_outside_ci_a_skip_is_a_skip(run, ci: str | None) -> None:  # type: ignore[no-untyped-def]
    result = run(SKIPS_IN_CI["skip_in_test"], ci=ci)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_ci_is_any_true_looking_value(run, ci: str) -> None:  # type: ignore[no-untyped-def]
    result = run(SKIPS_IN_CI["skip_in_test"], ci=ci)
    result.assert_outcomes(passed=1, failed=1)


def test_outside_ci_one_line_sums_up_the_skips(run) -> None:  # type: ignore[no-untyped-def]
    result = run("""
        import pytest

        pytestmark = pytest.mark.skipif(False, reason="never")

        @pytest.mark.asterisk
        def test_call():
            pytest.skip("no local Asterisk: not root")

        @pytest.mark.asterisk
        @pytest.mark.parametrize("n", [1, 2])
        def test_calls(n):
            pytest.skip("no local Asterisk: not root" if n == 1 else "sipp not found")

        @pytest.mark.browser
        def test_page():
            pytest.skip("no chromium on PATH")

        @pytest.mark.browser
        @pytest.mark.asterisk
        def test_page_with_a_call():
            pytest.skip("no chromium on PATH")

        @pytest.mark.skip(reason="later")
        def test_other():
            pass

        @pytest.mark.xfail(reason="known bug")
        def test_known_bug():
            assert False

        def test_passes():
            pass
        """, ci=None)
    result.assert_outcomes(passed=1, skipped=6, xfailed=1)
    result.stdout.fnmatch_lines([
        "skipped tests: 4 real-Asterisk (no local Asterisk: not root; sipp not found; "
        "no chromium on PATH), 2 browser (no chromium on PATH), 1 other",
    ])


def test_outside_ci_a_skipped_module_is_counted(run) -> None:  # type: ignore[no-untyped-def]
    result = run(SKIPS_IN_CI["module_level_skip"], ci=None)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines([
        "skipped tests: 0 real-Asterisk, 0 browser, 0 other, "
        "1 module(s) skipped whole at collection",
    ])
