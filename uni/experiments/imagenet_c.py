"""experiment=imagenet_c: MuFidelity under ImageNet-C corruptions (method x corruption,
per severity), its claims per corruption family paired on the base image."""

from __future__ import annotations

import re

import pandas as pd

from uni.analysis.claims import Claim, paired_block
from uni.analysis.sections import Context, per_model, section, table_block
from uni.analysis.tables import summarise
from uni.experiments.registry import Experiment, register_experiment
from uni.records import write_csv

# ImageNet-C families of the paper's figures; whichever corruptions the records hold
FAMILIES = {
    "colour": r"^(brightness|saturate)$", "texture/frequency": r"_blur$", "noise": r"_noise$",
}


def families(records: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """MuFidelity per base image (the independent unit), model and method, averaged over
    a family's corruptions and severities, as metrics ``mufidelity[<family>]``; and the
    corruptions each family found."""
    part = records[records["metric"] == "mufidelity"]
    frames, found = [], {}
    for family, pattern in FAMILIES.items():
        members = sorted(c for c in part["corruption"].dropna().unique() if re.search(pattern, c))
        if not members:
            continue
        found[family] = members
        rows = part[part["corruption"].isin(members)]
        means = rows.groupby(["model", "base_image_id", "method"])["value"].mean()
        frames.append(means.reset_index().rename(columns={"base_image_id": "image_id"})
                      .assign(metric=f"mufidelity[{family}]"))
    return (pd.concat(frames, ignore_index=True) if frames else part.iloc[:0]), found


def claims(records: pd.DataFrame) -> list[Claim]:
    by_family, found = families(records)
    severities = ", ".join(map(str, sorted(records["severity"].dropna().unique())))
    return [Claim(f"ImageNet-C {family} ({', '.join(members)}; severities {severities}):"
                  f" UNI's MuFidelity highest", f"mufidelity[{family}]", by_family,
                  ("eval.mufidelity",))
            for family, members in found.items()]


def report_section(ctx: Context) -> list[str]:
    out = ctx.out

    def block(r: pd.DataFrame, suffix: str) -> list[str]:
        part = r[r["metric"] == "mufidelity"]
        by_severity = summarise(part, rows=["method", "corruption"], columns="severity")
        name = f"imagenet_c_by_severity{suffix}.csv"
        write_csv(by_severity, out / "tables" / name)
        by_family, _ = families(r)
        # one value per base image (the independent unit): its mean over the severities
        per_base = (part.groupby(["method", "corruption", "base_image_id"], as_index=False)
                    ["value"].mean().assign(metric="mufidelity"))
        return [*table_block(summarise(per_base, rows="method", columns="corruption"), out,
                             f"imagenet_c_mufidelity{suffix}", columns="corruption",
                             metric="mufidelity"),
                "", f"Per severity: `tables/{name}`.", "",
                "Per corruption family, paired on the base image (its mean over the "
                "family's corruptions and severities):", "",
                *paired_block(by_family, sorted(by_family["metric"].unique()), out, suffix)]

    return section("ImageNet-C: MuFidelity (method x corruption, all severities; n: base "
                   "images, each its mean over the severities)",
                   [*ctx.run_lines, *per_model(ctx.records, block)])


register_experiment(Experiment(
    name="imagenet_c", title="MuFidelity under ImageNet-C corruptions", order=40,
    section=report_section, claims=claims, reproduce=True))
