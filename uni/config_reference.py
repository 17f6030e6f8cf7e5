"""The configuration reference page (``docs/configuration.md``), generated from the config
tree ``conf/`` so that it cannot drift: every group, every option file and every
setting, with its value and the comment that documents it in the YAML.

``python -m uni.config_reference`` prints the page; ``--write docs/configuration.md``
writes it (``tests/test_docs.py`` checks that the committed page equals what this prints).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from uni.config_dir import CONF_DIR
from uni.errors import os_error_line

PAGE = Path("docs/configuration.md")
# a mapping key, optionally as a list item, its value and an inline comment
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_+][\w.+-]*):(?:\s+(?P<value>[^#]*?))?"
                      r"\s*(?:#\s?(?P<comment>.*))?$")
COMMENT_LINE = re.compile(r"^(?P<indent>\s*)#\s?(?P<comment>.*)$")
PACKAGE = re.compile(r"^#\s*@package\s+(\S+)")


@dataclass
class OptionFile:
    """One YAML file of the tree: its description (the comments before its first key), the
    package its keys land in, its defaults list, and its settings as (dotted key, value,
    comment)."""

    path: Path
    description: str
    package: str
    defaults: list
    settings: list[tuple[str, str, str]]


def comments_by_key(text: str) -> tuple[str, dict[str, str]]:
    """The file's leading comment block, and each dotted key's comment: the comment on
    its line, the comment lines that follow it indented deeper (a continuation), and the
    comment block just above it."""
    header: list[str] = []
    comments: dict[str, list[str]] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    above: list[str] = []  # a comment block waiting for the key below it
    last: tuple[int, str] | None = None  # (indent, dotted key) that a continuation extends
    block_scalar_indent: int | None = None
    seen_key = False
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_scalar_indent is not None:  # inside a `key: |` text block
            if not line.strip() or indent > block_scalar_indent:
                continue
            block_scalar_indent = None
        if not line.strip():
            above, last = [], None
            continue
        comment = COMMENT_LINE.match(line)
        if comment:
            text_ = comment["comment"].strip()
            if PACKAGE.match(line.strip()):
                continue
            if last is not None and indent > last[0]:
                comments[last[1]][-1] += f" {text_}"
            elif not seen_key:
                header.append(text_)
            else:
                above.append(text_)
            continue
        match = KEY_LINE.match(line)
        if not match or line.lstrip().startswith("-"):
            above, last = [], None
            continue
        seen_key = True
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(key for _, key in stack), match["key"]])
        comments[dotted] = [" ".join(above)] if above else []
        if match["comment"]:
            comments[dotted].append(match["comment"].strip())
        above = []
        last = (indent, dotted) if match["comment"] else None
        value = (match["value"] or "").strip()
        if value in ("|", ">", "|-", ">-"):
            block_scalar_indent = indent
        elif not value:
            stack.append((indent, match["key"]))
    return " ".join(header), {key: "; ".join(parts) for key, parts in comments.items()}


def shown(value) -> str:
    """A value as it would be written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"{value.splitlines()[0]} ... ({len(value.splitlines())} lines)" \
            if "\n" in value.strip() else value
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def flattened(mapping: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, value) of every leaf; an empty mapping is a leaf."""
    out = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flattened(value, f"{dotted}."))
        else:
            out.append((dotted, value))
    return out


def option_file(path: Path) -> OptionFile:
    text = path.read_text()
    group = path.parent.relative_to(CONF_DIR).as_posix()
    package = next((m[1] for m in map(PACKAGE.match, text.splitlines()) if m), None)
    if package is None:  # Hydra's default: the group's path, dotted
        package = "_global_" if group == "." else group.replace("/", ".")
    description, comments = comments_by_key(text)
    content = yaml.safe_load(text) or {}
    defaults = content.pop("defaults", [])
    prefix = "" if package == "_global_" else f"{package}."
    settings = [(f"{prefix}{key}", shown(value), comments.get(key, ""))
                for key, value in flattened(content)]
    return OptionFile(path, description, package, defaults, settings)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def file_section(option: OptionFile, title: str) -> list[str]:
    lines = [f"### {title}", ""]
    if option.description:
        lines += [option.description, ""]
    lines += [f"File `conf/{option.path.relative_to(CONF_DIR).as_posix()}`"
              + ("" if option.package == "_global_" or title.startswith("`config")
                 else f"; its keys are under `{option.package}`") + ".", ""]
    if option.defaults:
        lines += ["Composes: " + ", ".join(f"`{shown(d)}`" for d in option.defaults), ""]
    if option.settings:
        lines += ["| setting | value | what it is |", "|---|---|---|"]
        lines += [f"| `{key}` | `{cell(value)}` | {cell(comment)} |"
                  for key, value, comment in option.settings]
        lines.append("")
    return lines


def reference() -> str:
    """The whole page: the top-level config, then each group with each of its options."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- generated by `python -m uni.config_reference --write docs/configuration.md` "
        "from conf/; do not edit by hand -->",
        "",
        "A run composes `conf/config.yaml` with one option of each group "
        "(`uni group=option`; several for `method` and `eval`: `method=[ig_black,uni]`) and "
        "any `key=value` override of the settings below. Values are the files' own; "
        "`${...}` refers to another setting. Groups marked *global* set keys anywhere in "
        "the config (their keys are shown in full).",
        "",
        "## Top level",
        "",
        *file_section(option_file(CONF_DIR / "config.yaml"), "`config.yaml`"),
    ]
    groups = sorted({p.parent for p in CONF_DIR.rglob("*.yaml")} - {CONF_DIR})
    for group_dir in groups:
        group = group_dir.relative_to(CONF_DIR).as_posix()
        files = sorted(group_dir.glob("*.yaml"))
        lines += [f"## `{group}`", "", "Options: " + ", ".join(
            f"`{p.stem}`" for p in files) + ".", ""]
        for path in files:
            option = option_file(path)
            scope = " (global)" if option.package == "_global_" else ""
            lines += file_section(option, f"`{group}={path.stem}`{scope}")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m uni.config_reference", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="PAGE", help=f"write it (e.g. {PAGE})")
    args = parser.parse_args(argv)
    if args.write is None:
        print(reference(), end="")
    else:
        try:
            args.write.write_text(reference())
        except OSError as err:
            parser.error(os_error_line(err))


if __name__ == "__main__":
    main()
