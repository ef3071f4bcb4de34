"""The end of CI's log: the totals of both suites, read from the JUnit XML
files real pytest runs write, in pytest's own form."""
import subprocess
import sys

from tools.harness.ci_summary import summary

SUITE = '''
import pytest

def test_passes():
    pass

def test_passes_too():
    pass

def test_fails():
    assert False

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
'''


def junit_of_a_real_run(tmp_path, name, source):
    test_file = tmp_path / f"test_{name}.py"
    test_file.write_text(source)
    report = tmp_path / f"{name}.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={report}", str(test_file)], cwd=tmp_path,
                   capture_output=True, timeout=60)
    return report


def test_the_last_line_adds_up_both_suites_in_pytests_form(tmp_path):
    first = junit_of_a_real_run(tmp_path, "first", SUITE)
    second = junit_of_a_real_run(tmp_path, "second", "def test_one():\n    pass\n")
    lines = summary([("tests on SQLite", first), ("tests on PostgreSQL", second)])
    assert lines[0].split() == "tests on SQLite 2 passed, 1 failed, 1 skipped".split()
    assert lines[1].split() == "tests on PostgreSQL 1 passed, 0 failed".split()
    assert lines[-1] == "3 passed, 1 failed, 1 skipped"


def test_a_suite_that_did_not_run_counts_nothing_and_says_so(tmp_path):
    ran = junit_of_a_real_run(tmp_path, "ran", "def test_one():\n    pass\n")
    lines = summary([("tests on SQLite", ran), ("tests on PostgreSQL", tmp_path / "none.xml")])
    assert lines[1].split() == "tests on PostgreSQL did not run".split()
    assert lines[-1] == "1 passed, 0 failed"


def test_errors_are_counted_apart_from_failures(tmp_path):
    broken = junit_of_a_real_run(tmp_path, "broken", (
        "import pytest\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError\n\n"
        "def test_one(broken):\n    pass\n\ndef test_two():\n    pass\n"))
    assert summary([("suite", broken)])[-1] == "1 passed, 0 failed, 1 error"
