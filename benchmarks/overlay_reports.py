"""One method's score vs NFE from several comparison reports on one plot (e.g. one setting varied).

    python benchmarks/overlay_reports.py --method shortcut \
        --report "sc_fraction 0.125, default (3 seeds)=docs/results/push_t_compare_unet.json" \
        --report "sc_fraction 0.25 (3 seeds)=docs/results/push_t_compare_unet_sc025.json" \
        --report "sc_fraction 0.5 (1 seed)=docs/results/push_t_compare_sc_fraction_05.json" \
        --title "shortcut, U-Net, 4,500 steps: self-consistency share" \
        --out docs/results/push_t_sc_fraction_score_vs_nfe.png

Each ``--report LABEL=PATH`` is a ``compare.json`` written by ``python -m shortcut_policy.compare``;
``LABEL=PATH#METHOD`` takes another method's rows from that report than ``--method``'s.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shortcut_policy.comparison.report import score_vs_nfe_figure
from shortcut_policy.envs import get_env_spec
from shortcut_policy.utils.io import atomic_write


def read_series(reports: list[str], default_method: str) -> tuple[dict[str, list[dict]], str]:
    """Label -> the method's rows of each ``LABEL=PATH[#METHOD]`` report, checked to exist; and the env
    the reports were rolled out in (one for all, so that one score axis fits them)."""
    series, envs = {}, set()
    for item in reports:
        label, sep, path = item.partition("=")  # the label ends at the first "="; a path may hold one
        if not sep or not label:
            raise SystemExit(f"--report: expected LABEL=PATH or LABEL=PATH#METHOD, got {item!r}")
        path, _, method = path.partition("#")
        method = method or default_method
        try:
            report = json.loads(Path(path).read_text())
            rows = report["rows"]
            envs.add(report["config"]["env"]["name"])
        except (OSError, ValueError, KeyError) as err:
            raise SystemExit(f"--report {label}: cannot read a comparison report at {path}: {err}") from None
        rows = [r for r in rows if r["method"] == method]
        if not rows:
            raise SystemExit(f"--report {label}: no rows for method {method!r} in {path}")
        series[label] = rows
    if len(envs) != 1:
        raise SystemExit(f"--report: expected reports from one env, got {sorted(envs)}")
    return series, envs.pop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="append", required=True,
                        help="LABEL=PATH[#METHOD] of a compare.json, one per line on the plot (repeat)")
    parser.add_argument("--method", default="shortcut", help="the method whose rows are drawn, unless #METHOD says")
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    series, env_name = read_series(args.report, args.method)
    title = args.title or f"{args.method}: score vs NFE"
    fig = score_vs_nfe_figure(series, title, get_env_spec(env_name), "lower right")
    fig.tight_layout()
    path = atomic_write(args.out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
