"""Merging comparison reports that each trained one seed: the same table as one comparison over all seeds."""

import json

import pytest
from hydra import compose, initialize_config_dir

from shortcut_policy.comparison.merge import main, merge_reports
from shortcut_policy.comparison.runs import aggregate
from shortcut_policy.config import CompareConfig, load_config, to_dict
from shortcut_policy.utils.paths import config_dir

METHODS = ("shortcut", "flow_matching")


def one_seed_report(path, seed, scores, successes, overrides=(), latency=None):
    """A compare.json of a one-seed comparison, rows built the way compare builds them."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = load_config(compose("compare", overrides=[f"seeds=[{seed}]", "methods=[shortcut,flow_matching]",
                                                        *overrides]), CompareConfig)
    rows = []
    for m, method in enumerate(METHODS):
        evaluated = [{"steps": k, "score": scores[m][i], "success_rate": successes[m][i] / 50, "episodes": 50,
                      **dict.fromkeys(("act_median_ms", "act_p95_ms", "replan_median_ms", "replan_p95_ms"), latency)}
                     for i, k in enumerate((1, 2))]
        rows += aggregate(method, [evaluated])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "config": to_dict(cfg), "seconds": 10.0, "machine": {"cpu": "A"}}))
    return path


def test_merged_seeds_give_the_table_one_comparison_over_them_would(tmp_path):
    a = one_seed_report(tmp_path / "s0/compare.json", 0, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]], latency=3.0)
    b = one_seed_report(tmp_path / "s1/compare.json", 1, [[0.7, 0.9], [0.4, 0.8]], [[15, 20], [1, 3]])
    merge_reports([b, a], tmp_path / "merged")
    merged = json.loads((tmp_path / "merged/compare.json").read_text())
    direct = aggregate("shortcut", [
        [{"steps": 1, "score": 0.7, "success_rate": 0.3, "episodes": 50}, {"steps": 2, "score": 0.9, "success_rate": 0.4, "episodes": 50}],
        [{"steps": 1, "score": 0.5, "success_rate": 0.1, "episodes": 50}, {"steps": 2, "score": 0.7, "success_rate": 0.2, "episodes": 50}],
    ])
    shortcut = [r for r in merged["rows"] if r["method"] == "shortcut"]
    for got, want in zip(shortcut, direct, strict=True):
        for key in ("steps", "score_mean", "score_ci95", "scores_per_seed", "seeds", "success_rate", "success_ci95", "episodes"):
            assert got[key] == pytest.approx(want[key]), key
    assert shortcut[0]["replan_median_ms"] == 3.0  # latency from the report that measured it, though given second
    assert merged["seeds"] == [1, 0] and merged["config"]["seeds"] == [1, 0] and merged["seconds"] == 20.0
    assert (tmp_path / "merged/compare.md").read_text().count("2 training seeds") == 1
    assert (tmp_path / "merged/score_vs_nfe.png").is_file()
    # a third seed merges over the earlier merge
    c = one_seed_report(tmp_path / "s2/compare.json", 2, [[0.6, 0.8], [0.5, 0.7]], [[0, 0], [0, 0]])
    merge_reports([a, b, c], tmp_path / "merged")
    assert json.loads((tmp_path / "merged/compare.json").read_text())["rows"][0]["seeds"] == 3


def test_reports_that_cannot_be_merged_are_refused_naming_why(tmp_path):
    a = one_seed_report(tmp_path / "s0/compare.json", 0, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]])
    again = one_seed_report(tmp_path / "again/compare.json", 0, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]])
    other = one_seed_report(tmp_path / "s1/compare.json", 1, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]],
                            overrides=["train.num_steps=9"])
    with pytest.raises(ValueError, match="training seed 0 is in both"):
        merge_reports([a, again], tmp_path / "m")
    with pytest.raises(ValueError, match="other settings .*: train.num_steps differ"):
        merge_reports([a, other], tmp_path / "m")
    with pytest.raises(ValueError, match="at least 2"):
        merge_reports([a], tmp_path / "m")
    with pytest.raises(ValueError, match="cannot read"):
        merge_reports([a, tmp_path / "missing.json"], tmp_path / "m")
    # a comparison's own report in --out is not replaced
    b = one_seed_report(tmp_path / "s2/compare.json", 2, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]])
    with pytest.raises(ValueError, match="comparison's own report"):
        merge_reports([a, b], tmp_path / "s0")
    # a report of several seeds (its successes are pooled, so its seeds cannot be told apart)
    two = json.loads(a.read_text())
    two["config"]["seeds"] = [0, 1]
    (tmp_path / "two.json").write_text(json.dumps(two))
    with pytest.raises(ValueError, match="one training seed per report"):
        merge_reports([tmp_path / "two.json", b], tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written before the checks pass
    with pytest.raises(SystemExit, match="error: reports: training seed 0"):
        main([str(a), str(again), "--out", str(tmp_path / "m")])


def test_a_report_from_before_an_option_merges_as_trained(tmp_path):
    """A report saved before ``policy.embedding_scale`` existed was trained at its default: it merges with one
    that states the default, and is refused beside one trained at another scale, naming the setting."""
    a = one_seed_report(tmp_path / "s0/compare.json", 0, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]])
    old = json.loads(a.read_text())
    del old["config"]["policy"]["embedding_scale"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    b = one_seed_report(tmp_path / "s1/compare.json", 1, [[0.7, 0.9], [0.4, 0.8]], [[15, 20], [1, 3]])
    merge_reports([tmp_path / "old.json", b], tmp_path / "merged")
    assert json.loads((tmp_path / "merged/compare.json").read_text())["config"]["policy"]["embedding_scale"] == 100.0
    other = one_seed_report(tmp_path / "s2/compare.json", 2, [[0.5, 0.7], [0.4, 0.6]], [[5, 10], [0, 2]],
                            overrides=["policy.embedding_scale=1000"])
    with pytest.raises(ValueError, match="other settings .*: policy.embedding_scale differ"):
        merge_reports([tmp_path / "old.json", other], tmp_path / "m")
    # settings this version cannot read are refused by name, before anything is written
    old["config"]["policy"]["embedding_scale"] = None
    (tmp_path / "unreadable.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="do not read as this version's.*embedding_scale"):
        merge_reports([tmp_path / "unreadable.json", b], tmp_path / "m")
    assert not (tmp_path / "m").exists()
