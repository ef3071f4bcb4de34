"""The benchmark's chart: each scenario's throughput as a ratio to the stock
one-hop floor, and its p50 and p99 latency, this run beside the previous.

Runs in its own virtualenv with matplotlib (``make bench`` makes it):
``python -m tools.harness.bench_chart REPORT [PREVIOUS] --out chart.svg``.
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
from matplotlib import ticker  # noqa: E402

# the floor's own scenarios are the scale, not results
SHOWN = ("shop-one-hop", "product", "catalogue", "catalogue-pages", "catalogue-deep",
         "orders-pages", "orders-deep", "place", "flow")
COLOURS = {"previous": "#9aa5b1", "this run": "#1f6feb"}


def label(report):
    scale = ", data scale" if report.get("data_scale") else ""
    return f"{report['when']} ({report['mode']}{scale})"


def by_key(report):
    return {(result["scenario"], result["concurrency"]): result
            for result in report["results"] if result["scenario"] in SHOWN}


def draw(report, previous, out):
    runs = {"this run": by_key(report)}
    if previous is not None:
        runs = {"previous": by_key(previous), **runs}
    keys = sorted(set().union(*runs.values()),
                  key=lambda key: (SHOWN.index(key[0]), key[1]))
    names = [f"{scenario}\nc={concurrency}" for scenario, concurrency in keys]
    width = 0.8 / len(runs)

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: a small, searchable file
    figure, (ratios, latencies) = plt.subplots(
        2, 1, figsize=(max(8, 0.9 * len(keys) + 2), 8), constrained_layout=True)
    for offset, (run, results) in enumerate(runs.items()):
        positions = [index + (offset - (len(runs) - 1) / 2) * width for index in range(len(keys))]
        ratio = [results[key]["ratio"] if key in results else 0 for key in keys]
        bars = ratios.bar(positions, ratio, width, color=COLOURS[run],
                          label=label(report if run == "this run" else previous))
        ratios.bar_label(bars, fmt="%.2f", fontsize="x-small")
        for percentile, marker in (("p50", "o"), ("p99", "^")):
            values = [results[key]["latency_ms"][percentile] if key in results else None
                      for key in keys]
            latencies.scatter(positions, [float("nan") if v is None else v for v in values],
                              marker=marker, color=COLOURS[run], label=f"{percentile}, {run}")
    ratios.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ratios.set_ylabel("throughput / stock Nameko one-hop floor")
    ratios.set_title("Throughput, as a ratio to the one-hop floor measured in the same run")
    ratios.legend(loc="upper right")
    latencies.set_yscale("log")
    latencies.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    latencies.set_ylabel("latency, ms (log scale)")
    latencies.set_title("Latency: p50 (circles) and p99 (triangles)")
    latencies.legend(loc="upper left", ncol=2, fontsize="small")
    for axes in (ratios, latencies):
        axes.set_xticks(range(len(keys)), names, fontsize="small")
        axes.grid(axis="y", alpha=0.3)
    figure.savefig(out)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("previous", type=Path, nargs="?")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    previous = None
    if args.previous is not None and args.previous.exists():
        previous = json.loads(args.previous.read_text())
    draw(json.loads(args.report.read_text()), previous, args.out)
    print(f"Chart: {args.out}")


if __name__ == "__main__":
    main()
