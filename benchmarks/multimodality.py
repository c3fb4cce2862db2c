"""How spread out are a policy's action chunks for one observation, and what does one step do to them?

    python benchmarks/multimodality.py --report "shortcut=RUN_A" --report "flow matching=RUN_B" \\
        [--steps 1 128] [--observations 128] [--samples 16] [--dataset datasets/push_t_expert.zarr]

Why: a flow-matching model sampled with one Euler step returns (about) the mean action chunk given
the observation. Where the demonstrations hold several distinct ways to act (go round the block on
the left or on the right), that mean lies between them, and the paper's one-step collapse follows;
where they hold one, the mean is a good action and one step costs little. A shortcut model is
trained to take the one step to a sample of the distribution, not to its mean.

Method. ``--observations`` observation windows are drawn (seeded) from the demonstration store.
Each policy draws ``--samples`` action chunks per observation at every step budget, each from its
own noise (the same noise for every policy and budget). Per observation and budget, on the
executed actions (pixels):
  * spread: RMS distance of the samples from their mean. Near 0: the policy acts deterministically
    here; large: it picks among several actions;
  * off-sample distance: for each sample, the distance to the nearest sample the same policy draws
    at its most steps (for that budget itself, the nearest other sample). A one-step output that
    falls between the many-step modes is far from every many-step sample;
  * mean shift: distance between the mean of the samples and the mean at the most steps;
  * roughness: RMS of the second difference along each chunk (a smooth path scores near 0; the
    demonstrations' own is reported for the same windows).
Distances between chunks are RMS over the executed actions of the per-action Euclidean distance.

Writes JSON (``--out``) and a plot (``--plot``): per-observation spread at the fewest vs the most
steps, and the sampled chunks for the observations where the many-step samples spread most.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from shortcut_policy.data import ReplayBuffer, SequenceSampler
from shortcut_policy.data.demos import default_dataset_path
from shortcut_policy.evaluate import trained_env
from shortcut_policy.evaluation.multimodality import chunk_distance, off_sample_distance, roughness, spread
from shortcut_policy.objectives import check_steps
from shortcut_policy.policy import Policy, load_policy
from shortcut_policy.utils.io import atomic_write, write_json

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "push_t_multimodality.json"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "push_t_multimodality.png"


def summarize_widest(result: dict, reference: int, share: float = 0.1) -> None:
    """Per policy: on the ``share`` of observations whose samples at the most steps spread most (its
    own), and on the rest, the mean spread and off-sample distance at each budget; and how well the
    per-observation spread at each budget follows the one at the most steps (Pearson r)."""
    for entry in result["policies"].values():
        per_obs = entry["per_observation"]
        ref = np.array(per_obs[str(reference)]["spread"])
        wide = ref >= np.quantile(ref, 1 - share)
        entry["widest"] = {"share": share, "observations": int(wide.sum()), "by_steps": {
            steps: {
                "spread_widest": float(np.mean(np.array(stats["spread"])[wide])),
                "spread_rest": float(np.mean(np.array(stats["spread"])[~wide])),
                "off_sample_widest": float(np.mean(np.array(stats["off_sample_distance"])[wide])),
                "spread_correlation_with_most_steps": float(np.corrcoef(stats["spread"], ref)[0, 1]),
            }
            for steps, stats in per_obs.items()
        }}


def draw(policy: Policy, obs: dict[str, np.ndarray], samples: int, steps: int, seed: int) -> np.ndarray:
    """(N, K, n_action_steps, A): K chunks per observation, each from its own noise."""
    n = next(iter(obs.values())).shape[0]
    repeated = {k: np.repeat(v, samples, axis=0) for k, v in obs.items()}  # (N*K, To, ...)
    actions = policy.predict_chunk(repeated, steps=steps, generator=torch.Generator().manual_seed(seed))
    return actions.reshape(n, samples, *actions.shape[1:])


def parse_reports(reports: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in reports:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            parser.error(f"--report: expected LABEL=CHECKPOINT, got {item!r}")
        if label in out:
            parser.error(f"--report: label {label!r} given twice")
        out[label] = path
    return out


def plot(result: dict, samples: dict[str, dict[int, np.ndarray]], agent: np.ndarray | None, path: Path) -> Path:
    """Spread scatter (fewest vs most steps) and the chunks of the widest observations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(samples)
    few, many = result["steps"][0], result["steps"][-1]
    widest = result["widest_observations"]
    fig, axes = plt.subplots(1 + len(widest), len(labels), figsize=(5.2 * len(labels), 4.6 * (1 + len(widest))), squeeze=False)
    for col, label in enumerate(labels):
        per_obs = result["policies"][label]["per_observation"]
        ax = axes[0, col]
        x, y = np.array(per_obs[str(many)]["spread"]), np.array(per_obs[str(few)]["spread"])
        top = max(x.max(), y.max(), 1.0) * 1.05
        ax.scatter(x, y, s=10, alpha=0.6)
        ax.plot([0, top], [0, top], color="gray", lw=1, ls="--")
        ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"spread at {many} steps (px)", ylabel=f"spread at {few} step(s) (px)",
               title=f"{label}\nspread, one point per observation", aspect="equal")
        for row, i in enumerate(widest, start=1):
            ax = axes[row, col]
            for steps, color, name in ((many, "0.6", f"{many} steps"), (few, "tab:red", f"{few} step(s)")):
                chunks = samples[label][steps][i]  # (K, T, 2)
                for k, chunk in enumerate(chunks):
                    ax.plot(chunk[:, 0], chunk[:, 1], color=color, lw=1, alpha=0.8, label=name if k == 0 else None)
            if agent is not None:
                ax.scatter(*agent[i], marker="x", color="k", label="agent (last observed)")
            points = np.concatenate([samples[label][s][i].reshape(-1, 2) for s in (few, many)] + ([agent[i][None]] if agent is not None else []))
            centre, half = points.mean(0), np.abs(points - points.mean(0)).max() * 1.15 + 1.0
            ax.set(aspect="equal", title=f"{label}\nobservation {i}: executed actions", xlabel="x (px)", ylabel="y (px)",
                   xlim=(centre[0] - half, centre[0] + half), ylim=(centre[1] + half, centre[1] - half))  # image y down
            if col == 0:
                ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="append", required=True, help="LABEL=CHECKPOINT (a run folder or policy.safetensors); repeat")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 128], help="step budgets; the last is the reference")
    parser.add_argument("--observations", type=int, default=128)
    parser.add_argument("--samples", type=int, default=16, help="chunks drawn per observation")
    parser.add_argument("--dataset", default=None, help="demonstration store (default: the env's default store)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widest", type=int, default=3, help="observations whose chunks are plotted")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--plot", default=str(PLOT))
    args = parser.parse_args()
    for field in ("observations", "samples"):
        if getattr(args, field) < 2:
            parser.error(f"--{field}: expected an integer >= 2, got {getattr(args, field)}")
    if args.widest < 0 or args.widest > args.observations:
        parser.error(f"--widest: expected an integer from 0 to --observations ({args.observations}), got {args.widest}")
    if len(set(args.steps)) != len(args.steps) or min(args.steps) < 1:
        parser.error(f"--steps: expected distinct integers >= 1, got {args.steps}")
    reports = parse_reports(args.report, parser)

    policies = {label: load_policy(path) for label, path in reports.items()}
    first = next(iter(policies.values()))
    layout = lambda p: (tuple(p.obs_keys), p.horizon, p.n_obs_steps, p.n_action_steps, p.contract.action_key)  # noqa: E731
    for label, policy in policies.items():
        if layout(policy) != layout(first):
            parser.error(f"--report {label}: expected the observation/action layout of the first policy {layout(first)}, got {layout(policy)}")
        try:
            check_steps(f"--steps for {label}", args.steps, policy.objective)
        except ValueError as err:
            parser.error(str(err))

    if args.dataset:
        dataset = Path(args.dataset)
    else:  # the store the first policy was trained on, from its provenance
        env = trained_env(next(iter(reports.values())), first)
        dataset = Path(env.dataset or default_dataset_path(env.spec()))
    if not dataset.exists():
        parser.error(f"--dataset: no demonstration store at {dataset}")
    sampler = SequenceSampler(
        ReplayBuffer.open(dataset), horizon=first.horizon, n_obs_steps=first.n_obs_steps,
        n_action_steps=first.n_action_steps, obs_keys=first.obs_keys, action_key=first.contract.action_key,
    )
    if args.observations > len(sampler):
        parser.error(f"--observations: expected at most the store's {len(sampler)} windows, got {args.observations}")
    windows = np.sort(np.random.default_rng(args.seed).choice(len(sampler), args.observations, replace=False))
    batch = sampler.sample(windows)
    obs = batch["obs"]
    start = first.n_obs_steps - 1
    demo_executed = batch["action"][:, start : start + first.n_action_steps]  # (N, T, A), as predict_chunk aligns

    steps_sorted = sorted(args.steps)
    reference = steps_sorted[-1]
    samples: dict[str, dict[int, np.ndarray]] = {}
    result: dict = {
        "dataset": str(dataset), "observations": args.observations, "samples": args.samples, "seed": args.seed,
        "steps": steps_sorted, "windows": windows.tolist(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "demonstration_roughness_mean": float(roughness(demo_executed).mean()), "policies": {},
    }
    with tqdm(total=len(policies) * len(steps_sorted), desc="sampling") as bar:
        for label, policy in policies.items():
            samples[label] = {}
            for steps in steps_sorted:
                samples[label][steps] = draw(policy, obs, args.samples, steps, args.seed)
                bar.update()
    for label, by_steps in samples.items():
        ref = by_steps[reference]
        per_obs, summary = {}, {}
        for steps, s in by_steps.items():
            stats = {
                "spread": spread(s),
                "off_sample_distance": off_sample_distance(s, ref, same=steps == reference),
                "mean_shift": chunk_distance(s.mean(1), ref.mean(1)),
                "roughness": roughness(s).mean(1),
            }
            per_obs[str(steps)] = {k: v.round(3).tolist() for k, v in stats.items()}
            summary[str(steps)] = {f"{k}_{q}": float(f(v)) for k, v in stats.items() for q, f in (("mean", np.mean), ("median", np.median))}
        result["policies"][label] = {"checkpoint": reports[label], "objective": policies[label].objective.name,
                                     "summary": summary, "per_observation": per_obs}
    summarize_widest(result, reference)
    # the observations where the policies' many-step samples spread most (mean over policies)
    ref_spread = {label: spread(by_steps[reference]) for label, by_steps in samples.items()}  # (N,) each
    wide = np.mean(list(ref_spread.values()), axis=0)
    result["widest_observations"] = np.argsort(-wide)[: args.widest].tolist()
    wide_share = {label: {f">{px}px": float((r > px).mean()) for px in (5, 10, 20, 40)} for label, r in ref_spread.items()}
    result["share_of_observations_with_spread_at_most_steps"] = wide_share

    print(f"\n{args.observations} observations x {args.samples} samples; distances in pixels (executed actions)")
    print(f"{'policy':<24}{'steps':>6}{'spread mean':>13}{'median':>8}{'off-sample mean':>17}{'median':>8}{'mean shift':>12}{'roughness':>11}")
    for label, entry in result["policies"].items():
        for steps in steps_sorted:
            s = entry["summary"][str(steps)]
            print(f"{label:<24}{steps:>6}{s['spread_mean']:>13.1f}{s['spread_median']:>8.1f}"
                  f"{s['off_sample_distance_mean']:>17.1f}{s['off_sample_distance_median']:>8.1f}{s['mean_shift_mean']:>12.1f}{s['roughness_mean']:>11.1f}")
    print(f"{'demonstrations':<30}{'':>47}{result['demonstration_roughness_mean']:>11.1f}")
    print(f"\nthe widest tenth of observations (each policy's own, by its {reference}-step spread) against the rest:")
    print(f"{'policy':<24}{'steps':>6}{'spread widest':>15}{'rest':>7}{'off-sample widest':>19}{'r with most steps':>19}")
    for label, entry in result["policies"].items():
        for steps in steps_sorted:
            w = entry["widest"]["by_steps"][str(steps)]
            print(f"{label:<24}{steps:>6}{w['spread_widest']:>15.1f}{w['spread_rest']:>7.1f}{w['off_sample_widest']:>19.1f}"
                  f"{w['spread_correlation_with_most_steps']:>19.2f}")
    for label, shares in wide_share.items():
        print(f"{label}: share of observations whose {reference}-step samples spread more than "
              + ", ".join(f"{k}: {v:.0%}" for k, v in shares.items()))
    out = write_json(args.out, result)
    print(f"wrote {out}")
    # Push-T's keypoint observation ends with the agent's position: mark it where the plot shows a chunk
    # (only this env's (18,) layout; Diffusion Policy's (9, 2) block keypoints hold no agent)
    trained_on = first.meta.get("config", {}).get("env", {}).get("name")
    agent = obs["keypoint"][:, -1, -2:] if trained_on == "push_t" and first.obs_shapes.get("keypoint") == (18,) else None
    print(f"wrote {plot(result, samples, agent, Path(args.plot))}")


if __name__ == "__main__":
    main()
