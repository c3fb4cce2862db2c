"""The comparison report's arithmetic: Pareto front, aggregation across training seeds."""

import dataclasses
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from shortcut_policy.comparison.report import markdown, pareto_front
from shortcut_policy.comparison.runs import aggregate
from shortcut_policy.evaluation.stats import mean_ci95
from shortcut_policy.objectives import OBJECTIVES
from shortcut_policy.training.resume import with_objective_options


def test_pareto_front_keeps_only_undominated_points():
    # (latency, score): the 3rd is beaten by the 2nd (faster and better); the 4th is slowest but best
    points = [(1.0, 0.5), (2.0, 0.8), (3.0, 0.7), (10.0, 0.9)]
    assert pareto_front(points) == [0, 1, 3]


def test_seed_interval_is_none_for_one_seed_and_student_t_beyond():
    assert mean_ci95([0.7]) is None
    # std (ddof=1) of [0.6, 0.7, 0.8] is 0.1; t(0.975, 2) = 4.303
    assert mean_ci95([0.6, 0.7, 0.8]) == pytest.approx(4.303 * 0.1 / 3**0.5, rel=1e-4)
    # 11 seeds: t(0.975, 10) = 2.228, not the normal 1.96
    eleven = [0.5, 0.7] * 5 + [0.6]
    assert mean_ci95(eleven) == pytest.approx(2.228 * 0.1 / 11**0.5, rel=1e-3)


def test_aggregate_pools_success_over_seeds_and_averages_scores():
    def row(steps, score, rate, lat=None):
        r = {"steps": steps, "score": score, "success_rate": rate, "episodes": 10}
        if lat:
            r.update(act_median_ms=0.1, act_p95_ms=0.2, replan_median_ms=lat, replan_p95_ms=2 * lat)
        return r

    rows = aggregate("shortcut", [[row(1, 0.8, 0.5, lat=5.0), row(8, 0.9, 0.7, lat=20.0)], [row(1, 0.6, 0.3), row(8, 0.9, 0.9)]])
    one, eight = rows
    assert one["steps"] == 1 and one["score_mean"] == pytest.approx(0.7)
    assert one["success_rate"] == pytest.approx(8 / 20) and one["episodes"] == 20
    assert one["control_hz"] == pytest.approx(100.0)  # 1 / (2 * 5 ms)
    assert eight["score_ci95"] == pytest.approx(0.0)


def test_aggregate_pairs_the_seeds_rows_by_step_budget_not_by_position():
    def row(steps, score):
        return {"steps": steps, "score": score, "success_rate": 0.0, "episodes": 5}

    rows = aggregate("flow", [[row(1, 0.2), row(4, 0.8)], [row(4, 0.6), row(1, 0.4)]])
    assert [(r["steps"], r["score_mean"]) for r in rows] == [(1, pytest.approx(0.3)), (4, pytest.approx(0.7))]
    with pytest.raises(ValueError, match="flow: expected every training seed evaluated at the same step budgets"):
        aggregate("flow", [[row(1, 0.2), row(2, 0.8)], [row(1, 0.4), row(4, 0.6)]])


def test_table_names_the_number_of_training_seeds_behind_each_score():
    def row(score):
        return {"steps": 1, "score": score, "success_rate": 0.0, "episodes": 5}

    three = aggregate("shortcut", [[row(0.5)], [row(0.6)], [row(0.7)]])
    one = aggregate("ddpm", [[row(0.4)]])
    assert "3 training seeds" in markdown(three)
    mixed = markdown(three + one)  # given checkpoints can differ in number per method
    assert "(n=3)" in mixed and "(n=1)" in mixed and "3 training seeds" not in mixed
    single = markdown(one)  # one seed: no interval to show, and none is printed
    assert "1 training seed, no CI" in single and "| 0.400 |" in single and "±" not in single
    assert "0.600 ± 0.248" in markdown(three)


def test_given_runs_of_one_method_must_take_the_same_step_budgets(tmp_path):
    """Unset budgets are the first run's sweep; a run that cannot take them is refused before anything runs."""
    import numpy as np
    import torch

    from shortcut_policy.comparison.runs import check_methods
    from shortcut_policy.config import CompareConfig, load_config
    from shortcut_policy.contract import PolicyContract
    from shortcut_policy.data import MinMaxNormalizer
    from shortcut_policy.features import obs_features
    from shortcut_policy.models.network import build_network
    from shortcut_policy.objectives import build_objective
    from shortcut_policy.policy import Policy

    runs = []
    for max_steps in (128, 64):
        config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}},
                              "objective": {"name": "shortcut", "max_steps": max_steps}})
        objective = build_objective(config.objective)
        contract = PolicyContract(obs_features({"keypoint": (18,)}), "action", 2, config.policy, config.objective)
        network = build_network(config.policy, contract.obs, 2)
        rng = np.random.default_rng(0)
        normalizer = MinMaxNormalizer.fit({"keypoint": rng.uniform(0, 512, (10, 18)), "action": rng.uniform(0, 512, (10, 2))})
        torch.manual_seed(0)
        runs.append(str(Policy(network, normalizer, objective, contract).save(tmp_path / f"m{max_steps}.safetensors")))
    cfg = load_config({"methods": ["shortcut"], "steps": {}, "checkpoints": {"shortcut": runs}}, CompareConfig)
    with pytest.raises(ValueError, match=r"steps.shortcut \(unset: the first run's \[1, 2, 4, 8, 16, 32, 64, 128\]\): expected a power of two from 1 to 64"):
        check_methods(cfg)
    cfg.steps = {"shortcut": [1, 64]}  # budgets both runs take
    assert len(check_methods(cfg)["shortcut"]) == 2


@pytest.mark.slow
def test_quick_comparison_trains_evaluates_and_reports(tmp_path, capsys):
    """Every method on one backbone, a few steps each, through the hydra config the command uses."""
    import json
    import shutil

    from hydra import compose, initialize_config_dir

    from shortcut_policy.comparison.runs import EVAL_CACHE, compare
    from shortcut_policy.data.demos import generate_demos
    from shortcut_policy.utils.paths import config_dir

    store = generate_demos("push_t", episodes=2, seed=100_000, out=tmp_path / "demos.zarr", progress=False)
    overrides = [
        "preset=quick", f"env.dataset={store}", "train.num_steps=3", "train.batch_size=8", "train.warmup_steps=1",
        "train.val_every=3", "train.checkpoint_every=3", "episodes=1", "latency_calls=8",
        "policy.unet.down_dims=[16,32]", "policy.unet.embed_dim=16",
        "steps.shortcut=[1,2]", "steps.meanflow=[1,2]", "steps.flow_matching=[1,2]", "steps.ddpm=[1,100]",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        train_only = compose("compare", overrides=[*overrides, "evaluate=false"])
        cfg = compose("compare", overrides=overrides)
    # stage 1 (e.g. on a GPU machine): train only, no report
    runs = compare(train_only, tmp_path / "out", progress=False)
    assert [p.name for p in runs] == [f"{m}_seed0" for m in OBJECTIVES]
    printed = capsys.readouterr().out
    assert printed.count("using demonstrations") == 4  # once per run trained here, not once more before them
    assert f"'checkpoints.ddpm=[{runs[3]}]'" in printed  # the command that evaluates these runs
    assert all((p / "policy.safetensors").is_file() for p in runs) and not (tmp_path / "out" / "compare.md").exists()
    # stage 2: the same command evaluates, reusing the finished runs
    paths = compare(cfg, tmp_path / "out", progress=False)
    assert {p.name for p in paths} == {"compare.md", "compare.json", "score_vs_nfe.png", "latency_vs_nfe.png", "pareto.png"}
    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    rows = report["rows"]
    assert report["runs"]["ddpm"] == ["runs/ddpm_seed0"]  # inside the report folder: relative, so it can move
    assert report["machine"]["latency_device"] == "cpu" and report["machine"]["latency_torch_threads"] >= 1
    assert [(r["method"], r["steps"]) for r in rows] == [
        ("shortcut", 1), ("shortcut", 2), ("meanflow", 1), ("meanflow", 2), ("flow_matching", 1), ("flow_matching", 2),
        ("ddpm", 1), ("ddpm", 100),
    ]
    ddpm_1, ddpm_100 = rows[-2], rows[-1]
    assert ddpm_100["replan_median_ms"] > ddpm_1["replan_median_ms"]  # 100 network calls cost more than one
    # each run trained here keeps its rows: a second invocation rolls nothing out again
    assert all((p / EVAL_CACHE).is_file() for p in runs)
    capsys.readouterr()
    compare(cfg, tmp_path / "out", progress=False)
    assert capsys.readouterr().out.count("rows reused") == 4
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["rows"][0]["scores_per_seed"] == rows[0]["scores_per_seed"]
    # a run folder the user gives is evaluated, and nothing is written into it
    mine = tmp_path / "mine"
    shutil.copytree(runs[0], mine, ignore=shutil.ignore_patterns(EVAL_CACHE))
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        given = compose("compare", overrides=[*overrides, "methods=[shortcut]", f"checkpoints.shortcut=[{mine}]"])
    compare(given, tmp_path / "out_given", progress=False)
    assert not (mine / EVAL_CACHE).exists() and (tmp_path / "out_given" / "compare.json").is_file()


def test_the_command_printed_after_training_only_evaluates_those_runs_with_the_other_overrides(tmp_path):
    import shlex

    from hydra import compose, initialize_config_dir

    from shortcut_policy.comparison.runs import evaluate_command
    from shortcut_policy.config import CompareConfig, load_config
    from shortcut_policy.utils.paths import config_dir

    overrides = ["preset=quick", "seeds=[0,1]", "++evaluate=false", "train.device=cuda", "out=elsewhere", "~checkpoints.ddpm",
                 "methods=[shortcut,flow_matching,fm2]", "+objectives.fm2={name: flow_matching}"]
    # run folders whose names hydra would otherwise split or misread
    runs = {"shortcut": [tmp_path / "s0", tmp_path / "a=b,c"], "flow_matching": [tmp_path / "it's [f0]"], "fm2": [tmp_path / "g"]}
    words = shlex.split(evaluate_command(runs, tmp_path / "out", overrides))
    assert words[:3] == ["python", "-m", "shortcut_policy.compare"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = load_config(compose("compare", overrides=words[3:]), CompareConfig)  # a valid comparison
    assert cfg.evaluate and cfg.out == str((tmp_path / "out").resolve())
    assert list(cfg.seeds) == [0, 1] and cfg.train.device == "cuda" and cfg.steps["shortcut"] == [1, 4, 128]
    assert {m: r for m, r in cfg.checkpoints.items() if r} == {m: list(map(str, r)) for m, r in runs.items()}


def test_complete_lines_leaves_out_a_line_still_being_written(tmp_path):
    from shortcut_policy.utils.io import complete_lines

    path = tmp_path / "rows.jsonl"
    assert complete_lines(path) == []  # not written yet
    path.write_text('{"steps": 1}\n{"steps": 2}\n{"ste')
    assert complete_lines(path) == ['{"steps": 1}', '{"steps": 2}']
    path.write_bytes('{"label": "\u00e9"}\n{"label": "\u00e9'.encode()[:-1])  # cut inside a 2-byte character
    assert complete_lines(path) == ['{"label": "\u00e9"}']


def test_presets_override_the_comparison_defaults():
    from hydra import compose, initialize_config_dir

    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        quick = compose("compare", overrides=["preset=quick"])
        full = compose("compare")
    assert list(quick.steps.shortcut) == [1, 4, 128] and quick.train.num_steps == 300 and list(quick.seeds) == [0]
    assert list(full.steps.shortcut) == [1, 2, 4, 8, 16, 32, 64, 128] and list(full.seeds) == [0, 1, 2]


def test_given_checkpoints_override_from_the_command_line():
    """The documented ``checkpoints.<method>=[runs]`` override composes (the keys exist in the config)."""
    from hydra import compose, initialize_config_dir

    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("compare", overrides=["checkpoints.shortcut=[runs/a,runs/b]", "checkpoints.ddpm=[runs/c]"])
    assert list(cfg.checkpoints.shortcut) == ["runs/a", "runs/b"] and list(cfg.checkpoints.ddpm) == ["runs/c"]
    assert list(cfg.checkpoints.flow_matching) == []  # not given: trained


@pytest.mark.slow
def test_runs_trained_and_evaluated_side_by_side_match_runs_done_in_process(tmp_path):
    """jobs=2 trains and evaluates each run in its own process (output in a log), with the same results in the same order."""
    import json
    import os

    import torch
    from hydra import compose, initialize_config_dir
    from safetensors.torch import load_file

    from shortcut_policy.comparison.runs import compare
    from shortcut_policy.data.demos import generate_demos
    from shortcut_policy.utils.paths import config_dir

    store = generate_demos("push_t", episodes=2, seed=100_000, out=tmp_path / "demos.zarr", progress=False)
    overrides = [
        "preset=quick", f"env.dataset={store}", "train.num_steps=2", "train.batch_size=8", "train.warmup_steps=1",
        "train.val_every=2", "train.checkpoint_every=2", "policy.unet.down_dims=[16,32]", "policy.unet.embed_dim=16",
        "methods=[shortcut,flow_matching]", "seeds=[0,1]", "episodes=1", "steps.shortcut=[1,2]", "steps.flow_matching=[1]",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        parallel = compose("compare", overrides=[*overrides, "jobs=2", "latency_calls=4"])
        serial = compose("compare", overrides=[*overrides, "jobs=1", "latency_calls=0"])
    stale = tmp_path / "parallel" / "runs" / "shortcut_seed0" / "train.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("a log left by an earlier run of this folder\n")
    compare(parallel, tmp_path / "parallel", progress=False)
    runs = [f"{m}_seed{s}" for m in ("shortcut", "flow_matching") for s in (0, 1)]
    for run in runs:
        assert "trained 2 steps" in (tmp_path / "parallel" / "runs" / run / "train.log").read_text()
    assert "earlier run" not in stale.read_text()  # a run trained anew starts a new log
    log = (tmp_path / "parallel" / "logs" / "evaluate_shortcut_1.log").read_text()
    assert "evaluating" in log and "steps=  1  score=" in log and "steps=  2  score=" in log  # a line per budget
    # each budget's row also goes to a JSON-lines file as it is done: the parent's progress count
    rows_file = [json.loads(line) for line in (tmp_path / "parallel" / "logs" / "evaluate_shortcut_1.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows_file] == [1, 2]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # the workers' thread count: same arithmetic
    try:
        paths = compare(serial, tmp_path / "serial", progress=False)
    finally:
        torch.set_num_threads(threads)
    # latency_calls=0: nothing to draw latency from, so only the score plot
    assert {p.name for p in paths} == {"compare.md", "compare.json", "score_vs_nfe.png"}
    for run in runs:
        got, want = (load_file(tmp_path / side / "runs" / run / "policy.safetensors") for side in ("parallel", "serial"))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    reports = {side: json.loads((tmp_path / side / "compare.json").read_text()) for side in ("parallel", "serial")}
    def scores(rows):
        return [(r["method"], r["steps"], r["scores_per_seed"], r["success_rate"]) for r in rows]

    assert scores(reports["parallel"]["rows"]) == scores(reports["serial"]["rows"])
    assert [(r["method"], r["steps"]) for r in reports["parallel"]["rows"]] == [("shortcut", 1), ("shortcut", 2), ("flow_matching", 1)]
    assert all(r["replan_median_ms"] > 0 for r in reports["parallel"]["rows"])  # measured after the workers, here


@pytest.mark.parametrize("jobs", ["0", "-1", "true", "'two'"])
def test_jobs_must_be_a_positive_integer(tmp_path, jobs):
    from hydra import compose, initialize_config_dir

    from shortcut_policy.comparison.runs import compare
    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("compare", overrides=["preset=quick", f"jobs={jobs}"])
    # a value of the wrong type fails in the config schema (naming the key), a bad integer in its check
    with pytest.raises(ValueError, match=r"jobs: expected an integer >= 1|full_key: jobs"):
        compare(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_compare_yaml_restates_the_compare_config_defaults():
    """``configs/compare.yaml`` (full preset) and ``CompareConfig`` mirror each other, key for key."""
    from hydra import compose, initialize_config_dir

    from shortcut_policy.config import CompareConfig, load_config
    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("compare")
    yaml, defaults = OmegaConf.to_container(cfg, resolve=True), dataclasses.asdict(CompareConfig())
    # the objectives come from configs/objective/ (tested below); the unet policy yaml omits the transformer's keys
    for side in (yaml, defaults):
        side.pop("objectives")
        side["policy"].pop("transformer", None)
    assert yaml == defaults
    assert load_config(cfg, CompareConfig).steps == CompareConfig().steps


def test_entries_of_the_comparison_dicts_can_be_replaced_or_removed():
    """hydra's ``~key`` removes an entry and ``+key=`` adds one; the dataclass defaults must not bring them back."""
    from hydra import compose, initialize_config_dir

    from shortcut_policy.config import CompareConfig, load_config
    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = load_config(compose("compare", overrides=[
            "~steps.ddpm", "~objectives.ddpm", "+objectives.ddpm={name: flow_matching}"]), CompareConfig)
    assert "ddpm" not in cfg.steps  # evaluated at every budget its objective allows
    assert cfg.objectives["ddpm"] == {"name": "flow_matching"}


@pytest.mark.parametrize("override, message", [
    ("seeds=[]", "seeds: expected a non-empty list of distinct training seeds"),
    ("seeds=[0,0]", "seeds: expected a non-empty list of distinct training seeds"),
    ("steps.ddpm=[]", r"steps.ddpm: expected a non-empty list of step counts >= 1, got \[\]"),
    ("steps.shortcut=[0,1]", "steps.shortcut: expected a non-empty list of step counts >= 1"),
    ("methods=[shortcut,shortcut]", "methods: expected a non-empty list of distinct methods"),
    ("methods=[consistency]", "methods: 'consistency' has no entry under objectives"),
    ("episodes=0", "episodes: expected >= 1, got 0"),
    ("latency_calls=-1", "latency_calls: expected >= 0"),
    ("seeds=[-1]", "seeds: expected a non-empty list of distinct training seeds >= 0"),
    ("+steps.shortcutt=[1]", "steps.shortcutt: 'shortcutt' has no entry under objectives"),
    ("checkpoints.ddpm=[runs/a]", r"checkpoints.ddpm: runs given for a method not in methods \['shortcut'\]"),
    # checked before the first run trains, not in a worker hours later
    ("objectives.shortcut.sc_fraction=1.5", "objectives.shortcut: objective.sc_fraction: expected a value in"),
    ("+objectives.shortcut.sc_fractoin=0.1", r"objectives.shortcut: objective \(shortcut\): unknown options \['sc_fractoin'\]"),
    ("steps.shortcut=[3]", "steps.shortcut: "),
    ("checkpoints.shortcut=[no/such/run]", "checkpoints.shortcut: checkpoint: expected a policy.safetensors file or a run folder"),
])
def test_bad_comparison_settings_are_refused_naming_the_key(tmp_path, override, message):
    from hydra import compose, initialize_config_dir

    from shortcut_policy.comparison.runs import compare
    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        methods = ["methods=[shortcut]"] if override.startswith("checkpoints.ddpm") else []
        cfg = compose("compare", overrides=["preset=quick", *methods, override])
    with pytest.raises(ValueError, match=message):
        compare(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_run_failing_in_a_worker_is_named_with_its_log_and_traceback(tmp_path):
    from hydra import compose, initialize_config_dir

    from shortcut_policy.comparison.runs import compare
    from shortcut_policy.utils.paths import config_dir

    not_a_store = tmp_path / "empty.zarr"
    not_a_store.mkdir()  # exists, so no demonstrations are made; opening it fails inside each worker's trainer
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("compare", overrides=[
            "preset=quick", f"env.dataset={not_a_store}", "train.num_steps=2", "train.batch_size=8",
            "methods=[shortcut]", "seeds=[0,1]", "evaluate=false", "jobs=2",
        ])
    with pytest.raises(RuntimeError, match=r"\[shortcut seed [01]\] failed; its output and traceback are in .*train.log") as info:
        compare(cfg, tmp_path / "out", progress=False)
    log = Path(str(info.value).split(" are in ")[1])  # the failed run's log (the other run was stopped)
    assert "Traceback" in log.read_text()


def test_an_observation_the_env_lacks_is_refused_before_any_worker_starts(tmp_path):
    from hydra import compose, initialize_config_dir

    from shortcut_policy.comparison.runs import compare
    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("compare", overrides=["preset=quick", "env.obs_keys=[no_such_key]", "jobs=2", f"env.dataset={tmp_path / 'x.zarr'}"])
    with pytest.raises(ValueError, match="env.obs_keys: 'no_such_key' is not an observation of push_t"):
        compare(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("method", list(OBJECTIVES))
def test_each_method_is_compared_with_the_objective_config_train_uses_by_default(method):
    """The comparison's objectives (from the registry) are ``configs/objective/<method>.yaml``'s, every option
    spelled out: a method is compared as it trains."""
    from hydra import compose, initialize_config_dir

    from shortcut_policy.utils.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        train = compose("train", overrides=[f"objective={method}"])
        cmp = compose("compare")
    assert dict(cmp.objectives[method]) == with_objective_options({"objective": dict(train.objective)})["objective"]


def test_a_run_resumes_under_other_sampling_options_but_not_other_training_options(tmp_path):
    """One check of saved settings (changes_from_saved) serves resume and the comparison: the objective's
    options are compared spelled out, so an option saved at its default and one left out are the same."""
    from shortcut_policy.checkpoint import save_tensors
    from shortcut_policy.comparison.runs import check_unchanged
    from shortcut_policy.config import load_config, to_dict

    # a DDPM run saved before timestep_spacing existed (its stored objective has no such key)
    saved = to_dict(load_config({"objective": {"name": "ddpm", "num_train_timesteps": 100}}))
    save_tensors(tmp_path / "train_state.safetensors", {"w": torch.zeros(1)}, {"step": 3, "config": saved})
    check_unchanged(tmp_path, load_config({"objective": {"name": "ddpm", "timestep_spacing": "leading"}}))  # sampling only
    check_unchanged(tmp_path, load_config({"objective": {"name": "ddpm"}}))  # 100 is the default: the same run
    with pytest.raises(ValueError, match=r"was trained with other values of objective.num_train_timesteps \(saved 100, asked 50\)"):
        check_unchanged(tmp_path, load_config({"objective": {"name": "ddpm", "num_train_timesteps": 50}}))


def test_the_comparison_s_embedding_scale_applies_to_every_method(tmp_path):
    """Methods differ only in their objective: ``policy.embedding_scale`` (default 100) is every run's."""
    from shortcut_policy.comparison.runs import plan_runs
    from shortcut_policy.config import CompareConfig, load_config
    from shortcut_policy.objectives import build_objective

    methods = list(OBJECTIVES)

    def scales(policy: dict) -> dict:
        cfg = load_config({"methods": methods, "seeds": [0], "policy": policy}, CompareConfig)
        _, todo = plan_runs(cfg, tmp_path, {m: [build_objective({"name": m})] for m in methods})
        return {label.split()[0]: config.policy.embedding_scale for label, config, _ in todo}

    assert scales({}) == dict.fromkeys(methods, 100.0)
    assert scales({"embedding_scale": 1000.0}) == dict.fromkeys(methods, 1000.0)


def test_a_new_objective_is_its_module_its_registry_entry_and_its_yaml(monkeypatch):
    """Adding an objective touches no generic file: once in the registry it is a method of the comparison and
    the suite (their yaml take the registry's node), with its options and its own step sweep, and a name every
    config accepts. (``train objective=<name>`` reads its ``configs/objective/<name>.yaml``.)"""
    from dataclasses import dataclass

    from hydra import compose, initialize_config_dir

    from shortcut_policy.config import CompareConfig, SuiteConfig, load_config, register_config_nodes
    from shortcut_policy.objectives import ObjectiveEntry, build_objective
    from shortcut_policy.objectives.flow_matching import FlowMatchingConfig, FlowMatchingObjective
    from shortcut_policy.utils.paths import config_dir

    @dataclass
    class HalfwayConfig(FlowMatchingConfig):
        halfway: float = 0.5  # an option of its own

    class HalfwayObjective(FlowMatchingObjective):
        name = "halfway"

        def valid_steps(self) -> list[int]:
            return [1, 2]

    monkeypatch.setitem(OBJECTIVES, "halfway", ObjectiveEntry(HalfwayConfig, HalfwayObjective, ("clip_sample",)))
    register_config_nodes()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cmp = load_config(compose("compare", overrides=["objectives.halfway.halfway=0.25"]), CompareConfig)
            suite = load_config(compose("suite", overrides=["methods=[shortcut,halfway]"]), SuiteConfig)
        assert cmp.methods[-1] == "halfway" and cmp.steps["halfway"] == [1, 2] and cmp.checkpoints["halfway"] == []
        assert cmp.objectives["halfway"] == {"name": "halfway", **dataclasses.asdict(HalfwayConfig(halfway=0.25))}
        assert suite.methods == ["shortcut", "halfway"] and suite.steps["halfway"] == [1, 2]
        assert "halfway" in CompareConfig().methods
        assert build_objective(cmp.objectives["halfway"]).config.halfway == 0.25
    finally:
        monkeypatch.undo()
        register_config_nodes()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        assert "halfway" not in compose("compare").methods  # gone with its registry entry
