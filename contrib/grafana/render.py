#!/usr/bin/env python3
"""Render contrib/grafana/cdra.json's panels to one PNG from a real Prometheus.

Grafana is not packaged in Debian, so the picture in docs/ is not a Grafana screenshot: it
is this script's rendering of the *same queries* the dashboard holds, panel by panel and in
the dashboard's layout (gridPos), asked of the Prometheus HTTP API (/api/v1/query_range)
and drawn with matplotlib. `$instance` becomes `.*`; `$__rate_interval` becomes
--rate-interval (Grafana uses four scrape intervals at least).

    render.py --prometheus http://127.0.0.1:9090 --start UNIX --end UNIX --out docs/grafana-cdra.png

contrib/grafana/scrape_demo.py runs cdra, real clients, Kea and Prometheus in a lab and
calls this at the end.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def query_range(base: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{q}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt: str, labels: dict[str, str]) -> str:
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out if fmt else json.dumps(labels)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dashboard", default=str(HERE / "cdra.json"))
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--step", type=float, default=5.0)
    ap.add_argument("--rate-interval", default="30s")
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", default="")
    a = ap.parse_args()

    dash = json.loads(Path(a.dashboard).read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    unit_h = 0.36  # inches per grid row
    fig = plt.figure(figsize=(20, bottom * unit_h + 1.2), dpi=90)
    fig.patch.set_facecolor("#111217")
    t0 = datetime.fromtimestamp(a.start, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    t1 = datetime.fromtimestamp(a.end, timezone.utc).strftime("%H:%M:%S UTC")
    fig.text(0.01, 1 - 0.25 / (bottom * unit_h + 1.2), f"{dash['title']}  —  {t0} to {t1}",
             color="white", fontsize=15, va="top")
    fig.text(0.01, 1 - 0.6 / (bottom * unit_h + 1.2),
             "Rendered by contrib/grafana/render.py from the dashboard's own PromQL queries "
             "against a real Prometheus scraping a running cdra (not a Grafana screenshot). "
             + a.note, color="#aaaaaa", fontsize=9, va="top")
    top = 1.2
    height = bottom * unit_h + top
    for r in rows:
        y = r["gridPos"]["y"]
        fig.text(0.01, 1 - (top + y * unit_h + 0.2) / height, r["title"], color="#ccccdc",
                 fontsize=11, weight="bold", va="center")
    for p in panels:
        g = p["gridPos"]
        left = g["x"] / 24 + 0.035
        width = g["w"] / 24 - 0.05
        ax_top = (top + g["y"] * unit_h + 0.35) / height
        ax_h = (g["h"] * unit_h - 1.05) / height
        ax = fig.add_axes((left, 1 - ax_top - ax_h, width, ax_h))
        ax.set_facecolor("#181b1f")
        for s in ax.spines.values():
            s.set_color("#333")
        ax.tick_params(colors="#ccccdc", labelsize=7)
        ax.set_title(p["title"], color="white", fontsize=10, loc="left")
        ax.grid(color="#2a2d33", linewidth=0.5)
        n = 0
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", a.rate_interval).replace('"$instance"', '".*"')
            for series in query_range(a.prometheus, expr, a.start, a.end, a.step):
                pts = [(float(ts), float(v)) for ts, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not pts:
                    continue
                xs = [datetime.fromtimestamp(ts, timezone.utc) for ts, _ in pts]
                ys = [v for _, v in pts]
                ax.plot(xs, ys, linewidth=1.2, label=legend(t.get("legendFormat", ""), series["metric"]))
                n += 1
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        ax.set_ylabel({"s": "seconds", "reqps": "per second", "ops": "per second",
                       "pps": "per second"}.get(unit, ""), color="#888", fontsize=7)
        ax.set_xlim(datetime.fromtimestamp(a.start, timezone.utc), datetime.fromtimestamp(a.end, timezone.utc))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
        if n:
            ax.legend(fontsize=6.5, loc="upper left", facecolor="#181b1f", edgecolor="#333",
                      labelcolor="#ccccdc", ncol=2 if n > 4 else 1)
        else:
            ax.text(0.5, 0.5, "No data", color="#888", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(a.out, facecolor=fig.get_facecolor())
    print(a.out)


if __name__ == "__main__":
    main()
