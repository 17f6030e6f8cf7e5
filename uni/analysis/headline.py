"""The README's headline table, generated from committed records so it cannot drift.

``python -m uni.analysis.headline`` prints the table;
``python -m uni.analysis.headline --write README.md`` replaces the block between the
README's markers with it (``tests/test_docs.py`` checks that the committed block equals
what this prints).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from uni.analysis.tables import load_records, pivot, summarise
from uni.records import saved_config

RUN_DIR = Path("results/dev/faithfulness")  # the development split's faithfulness run
METRICS = ("mufidelity", "deletion", "insertion")
LABELS = {"mufidelity": "MuFidelity", "deletion": "deletion AUC", "insertion": "insertion AUC"}
# pymdownx.snippets section markers: docs/index.md includes the same block
START, END = "<!-- --8<-- [start:headline] -->", "<!-- --8<-- [end:headline] -->"


def headline_table(run_dir: Path = RUN_DIR, root: Path = Path(".")) -> str:
    """Markdown: one line saying what was measured (model, data split and images,
    protocol, ``run_dir`` relative to ``root``), then method x metric cells
    ``mean [95% bootstrap interval] (n)``, the best per column in bold
    (:func:`uni.analysis.tables.pivot`)."""
    records = load_records([root / run_dir])
    records = records[records["metric"].isin(METRICS)]
    config = OmegaConf.to_container(saved_config(root / run_dir))
    data = config["data"]
    split = Path(str(data.get("root") or data["name"])).name
    first, count = int(data.get("start") or 0), records["image_id"].nunique()
    models = ", ".join(sorted(records["model"].unique()))
    mufidelity = config["eval"]["mufidelity"]
    caption = (
        f"{models}, images {first}-{first + count - 1} of the `{split}` split (n = {count}; "
        f"`{run_dir.as_posix()}`), MuFidelity {mufidelity['correlation']} over "
        f"{mufidelity['subsets']} masks, fill `{mufidelity['fill']}`, "
        f"{config['eval']['deletion']['steps']}-step curves, output `{config['output']}`; "
        "mean [95% bootstrap interval] (n), best in bold.")
    table = pivot(summarise(records), labels=LABELS).to_markdown()
    return f"{caption}\n\n{table}"


def with_block(text: str, block: str) -> str:
    """``text`` with everything between the markers replaced by ``block``."""
    head, found, rest = text.partition(START)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"the text has no {START} ... {END} block")
    return f"{head}{START}\n{block}\n\n{END}{tail}"  # a blank line ends the table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m uni.analysis.headline", description=__doc__)
    parser.add_argument("--run", type=Path, default=RUN_DIR, help="the run directory")
    parser.add_argument("--write", type=Path, metavar="README",
                        help="replace the block between the markers of this file")
    args = parser.parse_args(argv)
    table = headline_table(args.run)
    if args.write is None:
        print(table)
    else:
        args.write.write_text(with_block(args.write.read_text(), table))


if __name__ == "__main__":
    main()
