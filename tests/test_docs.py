"""The README and the documentation site: the README stays a short page for users, and
what is generated (its headline table, the configuration reference) equals what the code
generates from the records and the config tree today."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from uni import config_reference
from uni.analysis import headline

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_is_short_and_opens_with_install_commands_and_a_table():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200
    first = "\n".join(lines[:40])
    for text in ("pip install", "make reproduce", "make test"):
        assert text in first, text
    assert re.search(r"^\|.*\|\n\|[\s:|-]+\|\n\|.*\|$", first, flags=re.M), "no table"


def test_readme_headline_block_is_what_the_records_give_today():
    text = README.read_text()
    assert headline.with_block(text, headline.headline_table(root=ROOT)) \
        == text, "run: python -m uni.analysis.headline --write README.md"


def test_with_block_replaces_only_the_block_and_needs_both_markers():
    text = f"a\n{headline.START}\nold\n{headline.END}\nb\n"
    assert headline.with_block(text, "new") == f"a\n{headline.START}\nnew\n\n{headline.END}\nb\n"
    with pytest.raises(ValueError, match="block"):
        headline.with_block("a\nb\n", "new")


def test_configuration_page_is_generated_from_the_config_tree():
    page = (ROOT / config_reference.PAGE).read_text()
    assert page == config_reference.reference(), \
        "run: python -m uni.config_reference --write docs/configuration.md"


def test_configuration_page_has_every_option_file_and_setting():
    page = config_reference.reference()
    for path in (ROOT / "conf").rglob("*.yaml"):
        group = path.parent.relative_to(ROOT / "conf").as_posix()
        if group != ".":
            assert f"### `{group}={path.stem}`" in page, path
    uni = page[page.index("### `method=uni`"):]  # experiments (the ablation) set it too
    row = next(line for line in uni.splitlines() if line.startswith("| `method.uni.eps` |"))
    assert "`0.76078`" in row and "L2 radius" in row
    row = next(line for line in page.splitlines() if line.startswith("| `eval.mufidelity.masks` |"))
    assert "exact:" in row and "bernoulli:" in row  # the comment's continuation line


def test_comments_attach_to_their_keys():
    text = (
        "# what the file is\n"
        "# @package eval.x\n"
        "top: 1        # inline\n"
        "              # continued\n"
        "\n"
        "# above the section\n"
        "section:\n"
        "  inner: a    # nested\n"
        "help: |\n"
        "  text: not a key\n"
        "after: 2\n"
    )
    header, comments = config_reference.comments_by_key(text)
    assert header == "what the file is"
    assert comments["top"] == "inline continued"
    assert comments["section"] == "above the section"
    assert comments["section.inner"] == "nested"
    assert "text" not in comments and "help.text" not in comments
    assert comments["after"] == ""


def test_nothing_cites_the_shared_design_or_the_shared_folder():
    cited = ("DESIGN" + " §", "shared/" + "DESIGN")
    files = [README, *(ROOT / "docs").rglob("*.md"),
             *(p for d in ("uni", "benchmarks", "tests") for p in (ROOT / d).rglob("*.py"))]
    for path in files:
        text = path.read_text()
        assert not any(c in text for c in cited), path
        # the configuration reference shows the configs' own values, data paths included
        if path.suffix == ".md" and path.name != config_reference.PAGE.name:
            assert "../" + "shared" not in text, path


def test_the_readmes_python_quickstart_runs_as_shown(capsys):
    """The README's Python block, executed as written: UNI on two embedded photos, scored
    by MuFidelity under the command line's protocol, one finite score per image."""
    block = re.search(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)[1]
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    scores = [float(v) for v in re.findall(r"-?\d+\.\d+", printed)]
    assert printed.startswith("tensor(") and len(scores) == 2, printed
    assert all(-1 <= s <= 1 for s in scores)
