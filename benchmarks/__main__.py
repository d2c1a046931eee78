"""``python -m benchmarks [FIGURE...]`` (``make bench``): run the benchmarks, print a table.

FIGURE is any of ``worker`` (1), ``capacity`` (2), ``publish`` (3), ``logger`` (4), ``suites``
(5); none means all. ``BENCH_QUICK=1`` runs small sizes (under a minute, without ``make test``);
the JSON goes to ``$BENCH_JSON`` (default ``benchmarks/results/latest.json``). See README.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from benchmarks import logger, publish, suites, worker
from benchmarks.common import QUICK
from course.broker import find_broker, mask_url

ROOT = Path(__file__).resolve().parent
DEFAULT_JSON = ROOT / "results" / "latest.json"
FIGURES = ("worker", "capacity", "publish", "logger", "suites")
GOALS = {"worker_vs_raw": 0.9, "capacity_efficiency": 0.95, "put_vs_raw": 0.9}


def say(line: str) -> None:
    print(line, flush=True)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "aio-pika": version("aio-pika"),
        "aiormq": version("aiormq"),
    }


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


async def broker_version(url: str) -> str:
    import aiormq

    connection = await aiormq.connect(url)
    try:
        properties = connection.server_properties
        return f"{properties.get('product', '?')} {properties.get('version', '?')}"
    finally:
        await connection.close()


# --------------------------------------------------------------------------- the table


def _spread(median: float, quartiles: list[float]) -> str:
    return f"{median:.2f} ({quartiles[0]:.2f}-{quartiles[1]:.2f})"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  " + "  ".join(str(h).rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def print_tables(figures: dict) -> None:
    if "worker" in figures:
        table(
            "1. Worker throughput, no-op handler (messages/s and CPU us/message: medians; "
            "ratios: median of the rounds, quartiles in brackets)",
            ["capacity", "worker", "raw", "peer", "worker/raw", "peer/raw", "raw2/raw (noise)",
             "CPU worker", "raw"],
            [
                [c, f"{r['worker_per_s']:.0f}", f"{r['raw_per_s']:.0f}", f"{r['peer_per_s']:.0f}",
                 _spread(r["worker_vs_raw"], r["worker_vs_raw_quartiles"]),
                 _spread(r["peer_vs_raw"], r["peer_vs_raw_quartiles"]),
                 _spread(r["raw2_vs_raw"], r["raw2_vs_raw_quartiles"]),
                 f"{r['worker_cpu_us']:.0f}", f"{r['raw_cpu_us']:.0f}"]
                for c, r in figures["worker"].items()
            ],
        )  # fmt: skip
    if "capacity" in figures:
        table(
            "2. Capacity efficiency, handler awaits 50 ms: rate / (capacity / 0.05 s) "
            "(capacity 1: context, not in the figure)",
            ["capacity", "ideal/s", "worker", "raw", "worker/raw", "worker, prefetch 2x"],
            [
                [f"{c}" if r["in_figure"] else f"({c})", f"{r['ideal_per_s']:.0f}",
                 _spread(r["worker_efficiency"], r["worker_efficiency_quartiles"]),
                 _spread(r["raw_efficiency"], r["raw_efficiency_quartiles"]),
                 f"{r['worker_vs_raw']:.2f}", f"{r['prefetch2x_efficiency']:.2f}"]
                for c, r in figures["capacity"].items()
            ],
        )  # fmt: skip
    if "publish" in figures:
        table(
            "3. Publishing with confirms (tasks/s: medians; ratio: median of the rounds)",
            ["mode", "put()", "raw", "put/raw"],
            [
                [f"{mode} x{r['concurrency']}", f"{r['put_per_s']:.0f}", f"{r['raw_per_s']:.0f}",
                 _spread(r["put_vs_raw"], r["put_vs_raw_quartiles"])]
                for mode, r in figures["publish"].items()
            ],
        )  # fmt: skip
    if "logger" in figures:
        table(
            "4. Logger latency, info() -> handle_info (ms, all rounds pooled)",
            ["subscribers", "p50", "p99", "raw p50", "raw p99"],
            [
                [n, f"{r['logger_p50_ms']:.2f}", f"{r['logger_p99_ms']:.2f}",
                 f"{r['raw_p50_ms']:.2f}", f"{r['raw_p99_ms']:.2f}"]
                for n, r in figures["logger"].items()
            ],
        )  # fmt: skip
    if "suites" in figures:
        table(
            "5. Test-suite wall time",
            ["suite", "seconds", "result"],
            [
                [name, f"{r['seconds']:.1f}" if "seconds" in r else "-",
                 r.get("summary") or r.get("skipped") or ("passed" if r.get("passed") else "")]
                for name, r in figures["suites"].items()
            ],
        )  # fmt: skip


# --------------------------------------------------------------------------- the JSON


def headline(figures: dict) -> dict:
    """The four keys of the issue (None for a figure that was not run)."""
    result: dict = dict.fromkeys(
        ["worker_vs_raw", "capacity_efficiency", "put_vs_raw", "logger_p99_ms"]
    )
    if "worker" in figures:
        result["worker_vs_raw"] = min(r["worker_vs_raw"] for r in figures["worker"].values())
    if "capacity" in figures:
        result["capacity_efficiency"] = min(
            r["worker_efficiency"] for r in figures["capacity"].values() if r["in_figure"]
        )
    if "publish" in figures:
        result["put_vs_raw"] = figures["publish"]["sequential"]["put_vs_raw"]
    if "logger" in figures:
        result["logger_p99_ms"] = figures["logger"][1]["logger_p99_ms"]
    return result


def build_report(figures: dict, context: dict) -> dict:
    result = headline(figures)
    goals = {
        key: {"goal": goal, "met": None if result[key] is None else result[key] >= goal}
        for key, goal in GOALS.items()
    }
    return {**result, "goals": goals, "quick": QUICK, **context, "figures": figures}


def print_headline(report: dict) -> None:
    print()
    for key in ("worker_vs_raw", "capacity_efficiency", "put_vs_raw", "logger_p99_ms"):
        value, goal = report[key], GOALS.get(key)
        shown = "not run" if value is None else f"{value:.3f}"
        if goal is not None and value is not None:
            shown += f"  (goal >= {goal}: {'met' if value >= goal else 'NOT met'})"
        print(f"{key:20} {shown}")


async def run_figures(url: str, wanted: list[str]) -> dict:
    runs = {
        "worker": ("1. worker throughput", worker.throughput),
        "capacity": ("2. capacity efficiency", worker.efficiency),
        "publish": ("3. publishing", publish.publishing),
        "logger": ("4. logger latency", logger.latency),
    }
    figures = {}
    for name in wanted:
        if name in runs:
            title, run = runs[name]
            say(f"{title} ...")
            figures[name] = await run(url, say)
    return figures


def main(argv: list[str]) -> int:
    unknown = set(argv) - set(FIGURES)
    if unknown:
        print(f"unknown figure(s) {sorted(unknown)}; choose from {', '.join(FIGURES)}")
        return 2
    wanted = [name for name in FIGURES if name in argv] if argv else list(FIGURES)
    started, load_before = time.perf_counter(), load_average()
    broker = find_broker("tests", log=say)
    try:
        say(f"{broker.describe()}; {'quick' if QUICK else 'full'} run of {', '.join(wanted)}")
        figures = asyncio.run(run_figures(broker.url, wanted))
        if "suites" in wanted:
            say("5. test-suite time ...")
            figures["suites"] = suites.suite_times(broker.url, say)
        server = asyncio.run(broker_version(broker.url))
    finally:
        broker.stop()
    seconds = time.perf_counter() - started
    report = build_report(
        figures,
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "machine": machine(),
            "load_average": {"before": load_before, "after": load_average()},
            "broker": {"server": server, "source": broker.source, "url": mask_url(broker.url)},
        },
    )
    print_tables(figures)
    print_headline(report)
    path = Path(os.environ.get("BENCH_JSON") or DEFAULT_JSON)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'quick' if QUICK else 'full'} run took {seconds:.0f} s; JSON written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
