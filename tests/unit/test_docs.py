"""The README and docs/ hold together: every relative link and #anchor
leads somewhere, and every ``make`` target they name exists."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\]]|\n)*?\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+(?:-\S+\s+)*([a-z][\w-]*)")
SETTING = re.compile(r"^[A-Z_]+=")


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    seen = {}
    for line in FENCED.sub("", page.read_text()).splitlines():
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            name = slug(heading.group(1))
            count = seen.get(name, 0)
            seen[name] = count + 1
            yield name if count == 0 else f"{name}-{count}"


def links(page):
    for target in LINK.findall(FENCED.sub("", page.read_text())):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not ours
            yield target


def broken_links(page):
    for target in links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            yield f"{target}: no such file"
        elif anchor and anchor not in set(anchors(linked)):
            yield f"{target}: no heading #{anchor} in {linked.name}"


def make_commands(page):
    """The make targets a page names: in inline code, and at the start of
    a line (after any settings) in its code blocks."""
    text = page.read_text()
    for block in FENCED.findall(text):
        for line in block.splitlines()[1:]:
            words = line.partition(" #")[0].split()
            while words and SETTING.match(words[0]):
                words.pop(0)
            if words[:1] == ["make"]:
                yield from MAKE.findall(" ".join(words))
    for code in INLINE_CODE.findall(FENCED.sub("", text)):
        yield from MAKE.findall(code)


def makefile_targets():
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"([\w.$()/-][\w .$()/-]*):(?!=)", line)
        if rule:
            targets.update(rule.group(1).split())
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(page):
    assert list(broken_links(page)) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_make_target_named_exists(page):
    assert set(make_commands(page)) - makefile_targets() == set()


def test_the_readme_leads_to_every_page_in_one_click():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert set(PAGES[1:]) <= linked


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_checks_find_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# A page\n\n## Use it from `nameko shell`\n\n"
                    "[ok](#use-it-from-nameko-shell) [gone](missing.md) [bad](#nowhere)\n"
                    "[also ok](page.md#a-page) [web](https://example.com/x)\n\n"
                    "Run `make nonsense` or `make run`.\n\n```sh\nmake bench BENCH_ARGS=x\n"
                    "PG=x make --quiet bogus  # not make other\n# make no-target-in-a-comment\n```\n")
    assert list(broken_links(page)) == ["missing.md: no such file",
                                        "#nowhere: no heading #nowhere in page.md"]
    assert sorted(make_commands(page)) == ["bench", "bogus", "nonsense", "run"]
