"""Summarise a pytest-benchmark JSON file as portal-versus-peer ratios.

    python benches/report.py bench-results/bench.json [--plot out.png] [--markdown]

Each group holds one ``side = "portal"`` and one ``side = "peer"`` benchmark;
ratio = peer median / portal median, so above 1 means portal is faster. A group
with a portal side only and no target (nothing to compare with) is reported as
a throughput figure, "no peer". A group
whose portal side carries a ``target`` is met when the ratio reaches it.
Benchmarks never gate: the exit status is always 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    group: str
    portal: float | None = None
    peer: float | None = None
    target: float | None = None
    peer_name: str = ""

    @property
    def ratio(self) -> float | None:
        if self.portal is None or self.peer is None or self.portal <= 0:
            return None
        return self.peer / self.portal

    @property
    def status(self) -> str:
        if self.portal is not None and self.peer is None and self.target is None:
            return "no peer"
        if self.ratio is None:
            return "incomplete"
        if self.target is None:
            return "info"
        return "met" if self.ratio >= self.target else "MISSED"


def load(path: Path) -> tuple[list[Row], dict]:
    """Rows in the order their groups first appear in the file, and the machine info."""
    doc = json.loads(path.read_text())
    rows: dict[str, Row] = {}
    for bench in doc.get("benchmarks", []):
        group = bench.get("group") or bench.get("name", "?")
        row = rows.setdefault(group, Row(group))
        info = bench.get("extra_info") or {}
        median = bench["stats"]["median"]
        side = info.get("side")
        if side == "portal":
            row.portal = median
            row.target = info.get("target")
        elif side == "peer":
            row.peer = median
        row.peer_name = info.get("peer_name") or row.peer_name
    return list(rows.values()), doc.get("machine_info") or {}


def human(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError  # unreachable: the loop ends on ns


def cells(row: Row) -> list[str]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    target = "-" if row.target is None else f"{row.target:g}x"
    status = row.status
    if status == "MISSED":
        status = f"MISSED ({row.ratio / row.target:.0%} of target)"
    return [row.group, human(row.portal), human(row.peer), ratio, target, status, row.peer_name]


HEADER = ["group", "portal", "peer", "ratio", "target", "status", "peer is"]
RIGHT = {1, 2, 3, 4}  # numeric columns


def text_table(rows: list[Row]) -> str:
    table = [HEADER, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(HEADER), rule, *(fmt(line) for line in table[1:])])


def markdown_table(rows: list[Row]) -> str:
    align = ["---:" if i in RIGHT else "---" for i in range(len(HEADER))]
    lines = [HEADER, align, *(cells(r) for r in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def summary(rows: list[Row]) -> str:
    statuses = ("met", "MISSED", "info", "no peer", "incomplete")
    count = {s: sum(r.status == s for r in rows) for s in statuses}
    with_target = count["met"] + count["MISSED"]
    text = f"targets: {count['met']} of {with_target} met, {count['MISSED']} missed"
    text += f"; {count['info']} informative; {count['no peer']} without a peer"
    if count["incomplete"]:
        text += f"; {count['incomplete']} incomplete (a side is missing)"
    return text


def plot(rows: list[Row], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.ratio is not None]
    colours = {"met": "#2e7d32", "MISSED": "#c62828", "info": "#78909c"}
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.42 * max(len(shown), 1)))
    ys = list(range(len(shown)))[::-1]
    ratios = [r.ratio for r in shown]
    ax.barh(ys, ratios, color=[colours[r.status] for r in shown], height=0.6)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    for y, r in zip(ys, shown, strict=True):
        ax.annotate(
            f" {r.ratio:.2f}x",
            (r.ratio, y),
            va="center",
            fontsize=8,
            xytext=(2, 0),
            textcoords="offset points",
        )
        if r.target is not None:
            ax.plot(r.target, y, marker="|", markersize=18, markeredgewidth=2.5, color="black")
    hi = max([*ratios, *(r.target or 1 for r in shown), 1.0])
    lo = min([*ratios, 1.0])
    ax.set_xlim(lo / 1.6, hi * 2.2)
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100) if lo / 1.6 <= t <= hi * 2.2]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.set_yticks(ys, [r.group for r in shown], fontsize=9)
    ax.set_xlabel("speed-up: peer median / portal median (log scale; 1x = parity)")
    ax.set_title("portal_core vs peer")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    handles.append(
        plt.Line2D([], [], marker="|", markersize=12, markeredgewidth=2.5, color="black", ls="")
    )
    labels = ["target met", "target missed", "informative", "target"]
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    ax.grid(axis="x", which="major", alpha=0.3)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON output")
    parser.add_argument("--plot", type=Path, help="write a PNG of the ratios here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    try:
        rows, machine = load(args.json)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read {args.json}: {exc}", file=sys.stderr)
        return 0
    if args.markdown:
        print(markdown_table(rows))
        print()
    else:
        cpu = (machine.get("cpu") or {}).get("brand_raw", "?")
        print(f"{cpu}, Python {machine.get('python_version', '?')}")
        print(text_table(rows))
    print(summary(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
