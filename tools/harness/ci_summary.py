"""The test totals at the end of CI's log (``.ci/run``): one line per suite,
then, as the very last line, every suite together in pytest's form:
``N passed, M failed`` (and ``, K skipped`` / ``, E errors`` if any).

    python3 -m tools.harness.ci_summary "tests on SQLite=var/ci/sqlite.xml" ...

Reads the JUnit XML files pytest wrote (``--junitxml``); a suite whose file is
missing did not run and counts nothing. Standard library only: it runs even
when the virtualenv was never made.
"""
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path


def suite_counts(junit_path):
    """``Counter(passed=, failed=, skipped=, errors=)`` of one pytest run."""
    root = ElementTree.parse(junit_path).getroot()
    counts = Counter()
    for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
        tests, failed, errors, skipped = (
            int(suite.get(name, 0)) for name in ("tests", "failures", "errors", "skipped"))
        counts.update(passed=tests - failed - errors - skipped, failed=failed,
                      errors=errors, skipped=skipped)
    return counts


def totals_line(counts):
    parts = [f"{counts['passed']} passed", f"{counts['failed']} failed"]
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped")
    if counts["errors"]:
        parts.append(f"{counts['errors']} error{'s' if counts['errors'] > 1 else ''}")
    return ", ".join(parts)


def summary(suites):
    """``suites``: ``[(label, junit path)]``. The lines to print."""
    lines, total = [], Counter()
    for label, path in suites:
        if Path(path).is_file():
            counts = suite_counts(path)
            total.update(counts)
            lines.append(f"  {label:<28} {totals_line(counts)}")
        else:
            lines.append(f"  {label:<28} did not run")
    lines.append(totals_line(total))
    return lines


def main(argv=None):
    suites = [argument.split("=", 1) for argument in (argv or sys.argv[1:])]
    print("\n".join(summary(suites)))


if __name__ == "__main__":
    main()
