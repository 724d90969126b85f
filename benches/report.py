"""Summarise a pytest-benchmark JSON file as portal-versus-peer ratios.

    python benches/report.py bench-results/bench.json [--plot out.png] [--markdown]

Each group holds one ``side = "portal"`` and one ``side = "peer"`` benchmark;
ratio = peer median / portal median, so above 1 means portal is faster. Every
time is printed as its median with the interquartile range over the rounds,
``median (q1-q3)``; beside the ratio, in brackets, the range the ratio takes
between the quartiles (peer q1 / portal q3 to peer q3 / portal q1). A group
with a portal side only and no target (nothing to compare with) is reported as
a throughput figure, "no peer". A group whose portal side carries a ``target``
is met when the ratio of the medians reaches it.

Benchmarks tagged ``side = "batch"`` or ``"work"`` (benches/test_bench_envelope.py)
make a second table: each envelope batch call warm and cold (the first call of a
fresh process), beside the AES-GCM work of the same bytes. A benchmark whose
timings were taken elsewhere (in a child process) carries them, in seconds, as
``extra_info["samples"]``; they are used instead of pytest-benchmark's own.

Benchmarks never gate: the exit status is always 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The "api" of the parts of a cold call's cost timed alone (benches/cold_start.py).
PART_APIS = {"memory", "rng"}
# The targets of the batch table: cold at most COLD_LIMIT times warm, warm at most
# WORK_LIMIT times the AES-GCM work of the same bytes in one call.
COLD_LIMIT = 2.0
WORK_LIMIT = 2.0


@dataclass(frozen=True)
class Stat:
    """A median and its interquartile range, in seconds."""

    median: float
    q1: float
    q3: float
    rounds: int

    @classmethod
    def of(cls, bench: dict) -> Stat:
        samples = (bench.get("extra_info") or {}).get("samples")
        if samples:
            if len(samples) == 1:
                return cls(samples[0], samples[0], samples[0], 1)
            q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
            return cls(median, q1, q3, len(samples))
        st = bench["stats"]
        return cls(st["median"], st["q1"], st["q3"], st["rounds"])


@dataclass
class Row:
    group: str
    portal: Stat | None = None
    peer: Stat | None = None
    target: float | None = None
    peer_name: str = ""

    @property
    def ratio(self) -> float | None:
        if self.portal is None or self.peer is None or self.portal.median <= 0:
            return None
        return self.peer.median / self.portal.median

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        if self.ratio is None or self.portal is None or self.peer is None:
            return None
        if self.portal.q1 <= 0 or self.portal.q3 <= 0:
            return None
        return self.peer.q1 / self.portal.q3, self.peer.q3 / self.portal.q1

    @property
    def status(self) -> str:
        if self.portal is not None and self.peer is None and self.target is None:
            return "no peer"
        if self.ratio is None:
            return "incomplete"
        if self.target is None:
            return "info"
        return "met" if self.ratio >= self.target else "MISSED"


@dataclass
class BatchRow:
    """One envelope batch call: warm, and cold with its output state (``_into`` only)."""

    op: str
    call: str
    api: str = ""
    out: str = ""
    warm: Stat | None = None
    cold: Stat | None = None

    @property
    def is_part(self) -> bool:
        """A part of a cold call's cost timed alone (no envelope call: no warm side)."""
        return self.api in PART_APIS

    @property
    def label(self) -> str:
        where = {"fresh": ", out fresh from np.empty", "touched": ", out written before"}
        return self.call + where.get(self.out, "")


@dataclass
class Batches:
    rows: list[BatchRow] = field(default_factory=list)
    # (op, threads) -> (AES-GCM call name, its timing)
    work: dict[tuple[str, int], tuple[str, Stat]] = field(default_factory=dict)
    size: int = 0

    def work_for(self, op: str) -> Stat | None:
        found = self.work.get((op, 1))
        return None if found is None else found[1]


def load(path: Path) -> tuple[list[Row], Batches, dict]:
    """Rows in the order their groups first appear in the file, the batch table, and the
    machine info."""
    doc = json.loads(path.read_text())
    rows: dict[str, Row] = {}
    batches = Batches()
    warm: dict[tuple[str, str], Stat] = {}
    for bench in doc.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        side = info.get("side")
        if side == "batch":
            if info["mode"] == "warm":
                warm[info["op"], info["call"]] = Stat.of(bench)
            else:
                row = BatchRow(
                    info["op"],
                    info["call"],
                    info.get("api", ""),
                    info.get("out") or "",
                    cold=Stat.of(bench),
                )
                batches.rows.append(row)
            continue
        if side == "work":
            batches.work[info["op"], int(info.get("threads", 1))] = (info["call"], Stat.of(bench))
            batches.size = int(info.get("bytes", 0))
            continue
        group = bench.get("group") or bench.get("name", "?")
        row = rows.setdefault(group, Row(group))
        if side == "portal":
            row.portal = Stat.of(bench)
            row.target = info.get("target")
        elif side == "peer":
            row.peer = Stat.of(bench)
        row.peer_name = info.get("peer_name") or row.peer_name
    # Warm timings with no cold row (or cold rows without warm ones) still get a row.
    seen = {(r.op, r.call) for r in batches.rows}
    batches.rows += [BatchRow(op, call) for op, call in warm if (op, call) not in seen]
    for r in batches.rows:
        r.warm = warm.get((r.op, r.call))
    order = {"seal": 0, "open": 1}
    batches.rows.sort(key=lambda r: (order.get(r.op, 2), r.op))  # stable: file order within
    return list(rows.values()), batches, doc.get("machine_info") or {}


UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def unit_of(seconds: float) -> tuple[str, float]:
    for unit, scale in UNITS:
        if seconds >= scale or unit == "ns":
            return unit, scale
    raise AssertionError  # unreachable: the loop ends on ns


def number(value: float) -> str:
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f}"


def human(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    unit, scale = unit_of(seconds)
    return f"{number(seconds / scale)} {unit}"


def spread(stat: Stat | None) -> str:
    """``median unit (q1-q3)``, the quartiles in the median's unit."""
    if stat is None:
        return "-"
    unit, scale = unit_of(stat.median)
    median, q1, q3 = (number(x / scale) for x in (stat.median, stat.q1, stat.q3))
    return f"{median} {unit} ({q1}-{q3})"


def ratio_text(row: Row) -> str:
    if row.ratio is None:
        return "-"
    span = row.ratio_range
    if span is None:
        return f"{row.ratio:.2f}x"
    return f"{row.ratio:.2f}x ({span[0]:.2f}-{span[1]:.2f})"


def cells(row: Row) -> list[str]:
    target = "-" if row.target is None else f"{row.target:g}x"
    status = row.status
    if status == "MISSED" and row.ratio is not None and row.target:
        status = f"MISSED ({row.ratio / row.target:.0%} of target)"
    return [
        row.group,
        spread(row.portal),
        spread(row.peer),
        ratio_text(row),
        target,
        status,
        row.peer_name,
    ]


HEADER = ["group", "portal", "peer", "ratio", "target", "status", "peer is"]
RIGHT = {1, 2, 3, 4}  # numeric columns


def text_table(header: list[str], lines: list[list[str]], right: set[int]) -> str:
    table = [header, *lines]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def markdown_table(header: list[str], lines: list[list[str]], right: set[int]) -> str:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(line) + " |" for line in [header, align, *lines])


def limit_text(value: float | None, limit: float) -> str:
    """``1.40x met`` when ``value`` is at most ``limit``, else ``5.31x MISSED``."""
    if value is None:
        return "-"
    return f"{value:.2f}x {'met' if value <= limit else 'MISSED'}"


BATCH_HEADER = ["call", "warm", "cold", "cold/warm", "warm/AES-GCM"]
BATCH_RIGHT = {1, 2, 3, 4}


def batch_cells(b: Batches) -> list[list[str]]:
    lines = []
    for r in b.rows:
        if r.is_part:
            continue
        work = b.work_for(r.op)
        cold = None if r.cold is None or r.warm is None else r.cold.median / r.warm.median
        to_work = None if r.warm is None or work is None else r.warm.median / work.median
        lines.append(
            [
                r.label,
                spread(r.warm),
                spread(r.cold),
                limit_text(cold, COLD_LIMIT),
                limit_text(to_work, WORK_LIMIT),
            ]
        )
    return lines


def batch_title(b: Batches) -> str:
    cold_runs = {r.cold.rounds for r in b.rows if r.cold is not None}
    runs = "/".join(str(n) for n in sorted(cold_runs)) or "no"
    return (
        "envelope batches: warm = in this process after a warm-up; cold = the first call of a "
        f"fresh process ({runs} processes); median (q1-q3). Targets: cold/warm <= {COLD_LIMIT:g}x, "
        f"warm/AES-GCM (one call) <= {WORK_LIMIT:g}x."
    )


def work_lines(b: Batches) -> list[str]:
    lines = []
    for op in ("seal", "open"):
        found = {n: b.work[op, n] for (o, n) in sorted(b.work) if o == op}
        if not found:
            continue
        call = next(iter(found.values()))[0]
        parts = [
            f"{'one call' if n == 1 else f'{n} threads, one half each'} {spread(stat)}"
            for n, (_, stat) in found.items()
        ]
        lines.append(f"AES-GCM work of {op}: {call} of {b.size:,} B: " + "; ".join(parts))
    return lines


def part_lines(b: Batches) -> list[str]:
    parts = [f"{r.call} ({r.op}) {spread(r.cold)}" for r in b.rows if r.is_part]
    return ["cold parts, each alone in a fresh process: " + "; ".join(parts)] if parts else []


def batch_summary(b: Batches) -> str:
    cold = [r.cold.median / r.warm.median for r in b.rows if r.cold and r.warm and not r.is_part]
    to_work: dict[tuple[str, str], float] = {}
    for r in b.rows:
        work = b.work_for(r.op)
        if r.warm and work:
            to_work[r.op, r.call] = r.warm.median / work.median
    met_cold = sum(c <= COLD_LIMIT for c in cold)
    met_work = sum(w <= WORK_LIMIT for w in to_work.values())
    return (
        f"batch targets: cold within {COLD_LIMIT:g}x of warm: {met_cold} of {len(cold)} met; "
        f"warm within {WORK_LIMIT:g}x of the AES-GCM work: {met_work} of {len(to_work)} met"
    )


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
    for y, r in zip(ys, shown, strict=True):
        span = r.ratio_range
        if span is not None:  # the ratio's range between the quartiles
            ax.plot(span, (y, y), color="black", linewidth=1, solid_capstyle="butt")
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    for y, r in zip(ys, shown, strict=True):
        ax.annotate(
            f" {r.ratio:.2f}x",
            (max(r.ratio, *(r.ratio_range or ())), y),
            va="center",
            fontsize=8,
            xytext=(2, 0),
            textcoords="offset points",
        )
        if r.target is not None:
            ax.plot(r.target, y, marker="|", markersize=18, markeredgewidth=2.5, color="black")
    spans = [x for r in shown if r.ratio_range for x in r.ratio_range]
    hi = max([*ratios, *spans, *(r.target or 1 for r in shown), 1.0])
    lo = min([*ratios, *spans, 1.0])
    ax.set_xlim(lo / 1.6, hi * 2.2)
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100) if lo / 1.6 <= t <= hi * 2.2]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.set_yticks(ys, [r.group for r in shown], fontsize=9)
    ax.set_xlabel(
        "speed-up: peer median / portal median, line: quartile range (log scale; 1x = parity)"
    )
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
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    try:
        rows, batches, machine = load(args.json)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read {args.json}: {exc}", file=sys.stderr)
        return 0
    table = markdown_table if args.markdown else text_table
    if not args.markdown:
        cpu = (machine.get("cpu") or {}).get("brand_raw", "?")
        print(f"{cpu}, Python {machine.get('python_version', '?')}")
        print("times: median (q1-q3) over the rounds; ratio: peer/portal medians (quartile range)")
    print(table(HEADER, [cells(r) for r in rows], RIGHT))
    print(summary(rows))
    if batches.rows:
        print()
        print(batch_title(batches))
        print(table(BATCH_HEADER, batch_cells(batches), BATCH_RIGHT))
        for line in [*work_lines(batches), *part_lines(batches)]:
            print(line)
        print(batch_summary(batches))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
