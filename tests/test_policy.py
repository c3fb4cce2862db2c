"""Policy behaviour: action queue and history, input validation, save/load, no autograd."""

import json

import numpy as np
import pytest
import torch

from shortcut_policy.config import load_config, to_dict
from shortcut_policy.contract import PolicyContract
from shortcut_policy.data import MinMaxNormalizer
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.policy import Policy, load_policy

OBS_DIM, ACTION_DIM = 18, 2


def contract_of(config) -> PolicyContract:
    return PolicyContract(obs_features({"keypoint": (OBS_DIM,)}), "action", ACTION_DIM, config.policy, config.objective)


def policy_of(config, normalizer, network=None) -> Policy:
    """A policy with the run config ``config`` as provenance (an untrained network unless given)."""
    contract = contract_of(config)
    network = network or build_network(config.policy, contract.obs, ACTION_DIM)
    return Policy(network, normalizer, build_objective(config.objective), contract, meta={"config": to_dict(config)})


def make_policy(seed: int = 0, objective: str = "meanflow") -> Policy:
    torch.manual_seed(seed)
    config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}, "objective": {"name": objective}})
    rng = np.random.default_rng(seed)
    normalizer = MinMaxNormalizer.fit(
        {"keypoint": rng.uniform(0, 512, (100, OBS_DIM)), "action": rng.uniform(0, 512, (100, ACTION_DIM))}
    )
    return policy_of(config, normalizer)


def obs(value: float = 100.0) -> dict:
    return {"keypoint": np.full(OBS_DIM, value), "state": np.zeros(5)}


class CallCounter:
    def __init__(self, module):
        self.calls, self.grad_enabled = 0, []
        module.register_forward_hook(self.hook)

    def hook(self, module, inputs, output):
        self.calls += 1
        self.grad_enabled.append(torch.is_grad_enabled())


def test_act_replans_every_n_action_steps_and_reset_clears_the_queue():
    policy = make_policy()
    counter = CallCounter(policy.network.denoiser)
    for i in range(3 * policy.n_action_steps):
        action = policy.act(obs(i), steps=1)
        assert action.shape == (ACTION_DIM,) and np.isfinite(action).all()
    assert counter.calls == 3
    policy.reset()
    policy.act(obs(), steps=4)
    assert counter.calls == 3 + 4  # reset emptied the queue; 4 steps = 4 network calls
    assert not any(counter.grad_enabled)  # no autograd at inference


def test_act_uses_the_last_n_obs_steps_frames_and_pads_the_first():
    policy = make_policy()
    seen = []
    original = policy.predict_chunk
    policy.predict_chunk = lambda batch, **kw: seen.append(batch["keypoint"].copy()) or original(batch, **kw)
    for i in range(policy.n_action_steps + 1):
        policy.act(obs(float(i)))
    first, second = seen
    np.testing.assert_array_equal(first[0, :, 0], [0.0, 0.0])  # start padded by repeating frame 0
    np.testing.assert_array_equal(second[0, :, 0], [policy.n_action_steps - 1, policy.n_action_steps])


def test_act_matches_predict_chunk_executed_slice():
    policy = make_policy()
    history = {"keypoint": np.stack([np.full(OBS_DIM, 7.0)] * 2)[None]}
    chunk = policy.predict_chunk(history, steps=2, generator=torch.Generator().manual_seed(5))
    full = policy.predict_chunk(history, steps=2, full=True, generator=torch.Generator().manual_seed(5))
    assert chunk.shape == (1, policy.n_action_steps, ACTION_DIM)
    assert full.shape == (1, policy.horizon, ACTION_DIM)
    np.testing.assert_allclose(chunk[0], full[0, 1 : 1 + policy.n_action_steps])
    policy.reset(seed=5)
    policy._generator = torch.Generator().manual_seed(5)
    actions = [policy.act(obs(7.0), steps=2) for _ in range(policy.n_action_steps)]
    np.testing.assert_allclose(np.stack(actions), chunk[0], rtol=1e-6)


@pytest.mark.parametrize(
    "bad_obs, error, match",
    [
        ({"keypoint": np.zeros(17)}, ValueError, r"obs\['keypoint'\]: expected shape \(18,\), got \(17,\)"),
        ({"keypoint": np.full(18, np.nan)}, ValueError, "expected finite values"),
        ({"keypoint": np.array(["a"] * 18)}, TypeError, "expected a real-valued numeric array"),
        ({"keypoint": np.ones(18, dtype=bool)}, TypeError, "expected a real-valued numeric array"),
        ({"state": np.zeros(5)}, KeyError, "expected key 'keypoint'"),
    ],
)
def test_bad_observations_get_a_clear_error(bad_obs, error, match):
    with pytest.raises(error, match=match):
        make_policy().act(bad_obs)


@pytest.mark.parametrize("steps", [0, 3, 256, 2.0])
def test_bad_steps_get_a_clear_error(steps):
    with pytest.raises(ValueError, match="steps: expected a power of two from 1 to 128"):
        make_policy(objective="shortcut").act(obs(), steps=steps)


@pytest.mark.parametrize("steps", [0, 1025, 2.0, True])
def test_bad_steps_of_an_any_step_objective_get_a_clear_error(steps):
    with pytest.raises(ValueError, match=r"steps: expected an integer from 1 to 1024 \(meanflow\)"):
        make_policy().act(obs(), steps=steps)
    assert make_policy().act(obs(), steps=3).shape == (ACTION_DIM,)  # any count in range


def test_bare_array_accepted_for_a_single_key_policy():
    assert make_policy().act(np.zeros(OBS_DIM)).shape == (ACTION_DIM,)


def test_predict_chunk_validates_batched_shapes():
    policy = make_policy()
    with pytest.raises(ValueError, match=r"expected shape \(B, 2, 18\)"):
        policy.predict_chunk({"keypoint": np.zeros((4, 3, OBS_DIM))})


def test_save_and_load_round_trip_gives_identical_actions(tmp_path):
    policy = make_policy()
    path = policy.save(tmp_path / "policy.safetensors")
    loaded = load_policy(tmp_path)  # a run folder resolves to its policy.safetensors
    history = {"keypoint": np.random.default_rng(0).uniform(0, 512, (3, 2, OBS_DIM))}
    a = policy.predict_chunk(history, steps=4, generator=torch.Generator().manual_seed(1))
    b = loaded.predict_chunk(history, steps=4, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(a, b)
    assert loaded.contract == policy.contract and loaded.meta == policy.meta
    # a safetensors file, readable without pickle
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert any(k.startswith("normalizer.") for k in f.keys())


def test_a_transformer_saved_before_the_conditioning_option_loads_as_it_was_trained(tmp_path):
    """Transformers were cross-attention only before ``policy.transformer.conditioning`` existed (its default
    is now adaln): a checkpoint whose config lacks the key is rebuilt with cross-attention."""
    from shortcut_policy.checkpoint import load_tensors, save_tensors

    torch.manual_seed(0)
    config = load_config({"policy": {"backbone": "transformer", "transformer": {"d_model": 32, "n_layers": 1,
                                                                                 "conditioning": "cross_attention"}}})
    policy = policy_of(config, make_policy().normalizer)
    tensors, meta = load_tensors(policy.save(tmp_path / "new.safetensors"))
    del meta["contract"]["policy"]["transformer"]["conditioning"]  # as written before the option existed
    save_tensors(tmp_path / "old.safetensors", tensors, meta)
    assert load_config({"policy": {"backbone": "transformer"}}).policy.transformer.conditioning == "adaln"
    loaded = load_policy(tmp_path / "old.safetensors")
    assert loaded.contract.policy.transformer.conditioning == "cross_attention"
    history = {"keypoint": np.random.default_rng(0).uniform(0, 512, (3, 2, OBS_DIM))}
    a = policy.predict_chunk(history, steps=1, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(a, loaded.predict_chunk(history, steps=1, generator=torch.Generator().manual_seed(1)))


def test_a_checkpoint_acts_at_the_embedding_scale_it_was_trained_with(tmp_path):
    """The scale is stored in the checkpoint's config: a policy trained at 1000 acts at 1000 when loaded, and
    one saved before the option existed (every network at 100) loads at 100."""
    from shortcut_policy.checkpoint import load_tensors, save_tensors

    base = make_policy(objective="shortcut")
    config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}, "embedding_scale": 1000.0},
                          "objective": {"name": "shortcut"}})
    wide = policy_of(config, base.normalizer)
    wide.network.load_state_dict(base.network.state_dict())  # the same weights: only the scale differs
    history = {"keypoint": np.random.default_rng(0).uniform(0, 512, (3, 2, OBS_DIM))}

    def chunk(p: Policy) -> np.ndarray:
        return p.predict_chunk(history, steps=4, generator=torch.Generator().manual_seed(1))

    assert np.abs(chunk(wide) - chunk(base)).max() > 1e-3
    loaded = load_policy(wide.save(tmp_path / "wide.safetensors"))
    assert loaded.contract.policy.embedding_scale == 1000.0
    np.testing.assert_array_equal(chunk(wide), chunk(loaded))
    tensors, meta = load_tensors(base.save(tmp_path / "base.safetensors"))
    del meta["contract"]["policy"]["embedding_scale"]  # as written before the option existed
    save_tensors(tmp_path / "old.safetensors", tensors, meta)
    old = load_policy(tmp_path / "old.safetensors")
    assert old.contract.policy.embedding_scale == 100.0
    np.testing.assert_array_equal(chunk(base), chunk(old))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="without policy.safetensors"):
        load_policy(tmp_path)


def test_atomic_writes_leave_normal_permissions_and_no_temp_files(tmp_path):
    import os
    import stat

    from shortcut_policy.utils.io import write_json

    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_rollout_noise_is_its_own_so_results_do_not_depend_on_what_ran_before():
    """Evaluation seeds its sampler noise itself: an unseeded global RNG would make tables irreproducible."""
    from shortcut_policy.evaluation.rollout import rollout

    policy = make_policy()
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # a different global state before each rollout
        results = rollout(policy, "push_t", seeds=[0, 1], steps=1, progress=False)
        runs.append([(r.score, r.length) for r in results])
    assert runs[0] == runs[1]


def test_act_keeps_its_own_copy_of_the_observation_history():
    """A control loop that refills one buffer in place must not rewrite the frames act() already holds."""
    policy = make_policy()
    seen = []
    original = policy.predict_chunk
    policy.predict_chunk = lambda batch, **kw: seen.append(batch["keypoint"].copy()) or original(batch, **kw)
    buffer = obs(107.0)
    for i in range(policy.n_action_steps + 1):
        buffer["keypoint"][:] = 107.0 + i  # the same array, refilled
        policy.act(buffer)
    np.testing.assert_array_equal(seen[1][0, :, 0], [107.0 + policy.n_action_steps - 1, 107.0 + policy.n_action_steps])


def test_a_file_that_is_not_a_policy_gets_a_clear_error(tmp_path):
    from shortcut_policy.checkpoint import save_tensors

    state = save_tensors(tmp_path / "train_state.safetensors", {"w": torch.zeros(2)}, {"step": 5})
    with pytest.raises(ValueError, match=r"expected a policy file .* \(a training state\)"):
        load_policy(state)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="expected a safetensors file, could not read it"):
        load_policy(junk)


def test_sampling_options_of_a_checkpoint_can_be_replaced_at_load_but_training_options_cannot(tmp_path):
    torch.manual_seed(0)
    config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}, "objective": {"name": "ddpm"}})
    policy_of(config, make_policy().normalizer).save(tmp_path / "policy.safetensors")

    assert load_policy(tmp_path).objective.ddim_timesteps(2) == [99, 49]  # the stored (default) spacing
    leading = load_policy(tmp_path, sampling={"timestep_spacing": "leading"})
    assert leading.objective.ddim_timesteps(2) == [50, 0] and leading.contract.objective["timestep_spacing"] == "leading"
    with pytest.raises(ValueError, match="sampling.num_train_timesteps: expected a sampling option of the ddpm objective"):
        load_policy(tmp_path, sampling={"num_train_timesteps": 50})
    with pytest.raises(ValueError, match="sampling: objective.timestep_spacing: expected one of"):
        load_policy(tmp_path, sampling={"timestep_spacing": "middle"})


def test_evaluate_command_replaces_a_sampling_option_from_the_command_line(tmp_path):
    """``python -m shortcut_policy.evaluate checkpoint=<run> sampling.timestep_spacing=leading``, composed
    as hydra composes it, up to the rollouts."""
    from hydra import compose, initialize_config_dir

    from shortcut_policy.evaluate import load_for_evaluation
    from shortcut_policy.utils.paths import config_dir

    config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}, "objective": {"name": "ddpm"}})
    policy_of(config, make_policy().normalizer).save(tmp_path / "policy.safetensors")
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        default = compose("evaluate", overrides=[f"checkpoint={tmp_path}"])
        leading = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "sampling.timestep_spacing=leading"])
        bad = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "steps=[1,128]"])
        deadline_only = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "deadline_ms=[5,20]"])
        bad_deadline = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "deadline_ms=[5,-1]"])
        clock_without_steps = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "deadline_ms=[5]", "clock_delays=[1]"])
        bad_ensemble = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "temporal_ensemble=-0.5"])
        ensembled = compose("evaluate", overrides=[f"checkpoint={tmp_path}", "temporal_ensemble=0.01"])
    _, policy, steps, deadlines = load_for_evaluation(default)
    assert deadlines == []
    assert policy.objective.ddim_timesteps(2) == [99, 49] and steps == [1, 2, 4, 8, 16, 100]  # DDPM's own sweep
    assert load_for_evaluation(leading)[1].objective.ddim_timesteps(2) == [50, 0]
    with pytest.raises(ValueError, match="steps: expected an integer from 1 to 100"):
        load_for_evaluation(bad)
    assert load_for_evaluation(deadline_only)[2:] == ([], [5, 20])  # deadlines alone: no step sweep
    with pytest.raises(ValueError, match="deadline_ms: expected a positive number of milliseconds .*, got -1"):
        load_for_evaluation(bad_deadline)
    with pytest.raises(ValueError, match=r"clock_delays: the clocked rows run at the step budgets, and none is asked"):
        load_for_evaluation(clock_without_steps)
    with pytest.raises(ValueError, match=r"temporal_ensemble: expected None \(off\) or a decay m in \[0, 100\)"):
        load_for_evaluation(bad_ensemble)
    assert load_for_evaluation(ensembled)[1].temporal_ensemble == 0.01


def test_evaluate_command_runs_from_the_command_line(tmp_path):
    """The real entry point, in a subprocess, on a tiny untrained policy: one episode at one budget."""
    import json
    import subprocess
    import sys

    make_policy().save(tmp_path / "run" / "policy.safetensors")
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "shortcut_policy.evaluate", f"checkpoint={tmp_path / 'run'}", "steps=[1]", "episodes=1",
         "latency_calls=0", "videos=0", f"out={out}", "sampling.clip_sample=false", "deadline_ms=[1000]"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "eval.json").read_text())
    assert [r["steps"] for r in report["rows"]] == [1] and report["objective_options"]["clip_sample"] is False
    (deadline,) = report["deadline_rows"]  # which budgets fit depends on this machine's clock (test_deadline.py fixes it)
    assert deadline["deadline_ms"] == 1000 and deadline["episodes"] == 1 and sum(deadline["steps_chosen"].values()) >= 1
    assert "| deadline (ms) |" in (out / "eval.md").read_text()
    assert (out / "eval_deadline.png").is_file()


def test_batched_act_keeps_a_history_and_a_queue_per_row_and_resets_chosen_rows():
    policy = make_policy()
    seen = []
    original = policy.predict_chunk
    policy.predict_chunk = lambda batch, **kw: seen.append(batch["keypoint"][..., 0].copy()) or original(batch, **kw)
    frames = lambda *values: {"keypoint": np.stack([np.full(OBS_DIM, v) for v in values])}  # noqa: E731
    first = policy.act(frames(10.0, 20.0), steps=1)
    assert first.shape == (2, ACTION_DIM) and len(seen) == 1
    np.testing.assert_array_equal(seen[0], [[10.0, 10.0], [20.0, 20.0]])  # each row padded with its own first frame
    policy.act(frames(11.0, 21.0))  # both queues still hold actions: no network call
    policy.reset(rows=[1])  # row 1 starts a new episode; row 0 goes on
    policy.act(frames(12.0, 30.0))
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[1], [[30.0, 30.0]])  # only row 1 replans, from its new first frame
    for _ in range(policy.n_action_steps - 3):
        policy.act(frames(13.0, 31.0))
    policy.act(frames(14.0, 32.0), rows=[0, 1])
    np.testing.assert_array_equal(seen[2], [[13.0, 14.0]])  # row 0's queue ran dry: its last two frames
    # rows name the control loops: a batch may hold any of them, in any order
    policy.act(frames(50.0), rows=[7])
    np.testing.assert_array_equal(seen[3], [[50.0, 50.0]])


def test_batched_act_replans_rows_in_the_order_given_from_one_noise_stream():
    """One generator feeds every replanning row in turn (as the rollout's did): rows given in another order
    draw other noise, and a reseeded reset repeats the draws."""
    policy = make_policy()
    batch = {"keypoint": np.random.default_rng(0).uniform(0, 512, (3, OBS_DIM))}
    policy.reset(seed=4)
    a = policy.act(batch, rows=[0, 1, 2])
    policy.reset(seed=4)
    b = policy.act(batch, rows=[0, 1, 2])
    np.testing.assert_array_equal(a, b)
    single = make_policy()
    single.reset(seed=4)
    np.testing.assert_allclose(single.act({"keypoint": batch["keypoint"][0]}), a[0], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    "obs, rows, match",
    [
        ({"keypoint": np.zeros((2, OBS_DIM))}, [0, 0], r"rows: expected a list of distinct integers >= 0 \(one per observation row: 2\), got \[0, 0\]"),
        ({"keypoint": np.zeros((2, OBS_DIM))}, [0], r"rows: expected .* \(one per observation row: 2\), got \[0\]"),
        ({"keypoint": np.zeros((2, OBS_DIM))}, [0, -1], r"rows: expected a list of distinct integers >= 0"),
        ({"keypoint": np.zeros((0, OBS_DIM))}, None, r"obs\['keypoint'\]: expected shape \(18,\), got \(0, 18\)"),
        ({"keypoint": np.zeros((2, 3, OBS_DIM))}, None, r"obs\['keypoint'\]: expected shape \(18,\), got \(2, 3, 18\) \(a batch"),
    ],
)
def test_bad_batches_and_rows_get_a_clear_error(obs, rows, match):
    with pytest.raises(ValueError, match=match):
        make_policy().act(obs, rows=rows)


def test_a_two_key_batch_must_agree_on_batching():
    config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}})
    contract = PolicyContract(obs_features({"keypoint": (OBS_DIM,), "state": (5,)}), "action", ACTION_DIM, config.policy, config.objective)
    rng = np.random.default_rng(0)
    normalizer = MinMaxNormalizer.fit({"keypoint": rng.uniform(0, 512, (9, OBS_DIM)), "state": rng.uniform(0, 512, (9, 5)),
                                       "action": rng.uniform(0, 512, (9, ACTION_DIM))})
    policy = Policy(build_network(config.policy, contract.obs, ACTION_DIM), normalizer, build_objective(config.objective), contract)
    with pytest.raises(ValueError, match=r"obs\['state'\]: expected a batch of 2 like obs\['keypoint'\], got shape \(5,\)"):
        policy.act({"keypoint": np.zeros((2, OBS_DIM)), "state": np.zeros(5)})
    with pytest.raises(ValueError, match=r"obs\['state'\]: expected a batch of 2 like obs\['keypoint'\], got shape \(3, 5\)"):
        policy.act({"keypoint": np.zeros((2, OBS_DIM)), "state": np.zeros((3, 5))})
    assert policy.act({"keypoint": np.zeros((2, OBS_DIM)), "state": np.zeros((2, 5))}).shape == (2, ACTION_DIM)


def test_a_checkpoint_of_the_format_before_contracts_loads_and_acts_as_it_did():
    """tests/data/policy_format2.safetensors was written by the code of cbe3fa7 (run config, shapes and action
    size, no contract), with a camera and a low-dim key; its chunk for a fixed history was saved beside it."""
    import json
    from pathlib import Path

    data = Path(__file__).parent / "data"
    policy = load_policy(data / "policy_format2.safetensors")
    assert policy.contract.obs_keys == ["image", "agent_pos"] and policy.contract.cameras == ["image"]
    assert policy.contract.action_key == "action" and policy.action_dim == 2 and policy.horizon == 8
    assert policy.meta["config"]["env"]["name"] == "push_t" and "dataset" in policy.meta  # provenance kept
    saved = json.loads((data / "policy_format2_chunk.json").read_text())
    history = {k: np.asarray(v, dtype=np.uint8 if k == "image" else np.float64) for k, v in saved["history"].items()}
    chunk = policy.predict_chunk(history, steps=1, full=True, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(chunk, np.asarray(saved["chunk"]), rtol=1e-5, atol=1e-3)


def test_a_contract_round_trips_and_its_bad_fields_are_named():
    policy = make_policy()
    assert PolicyContract.from_dict(policy.contract.to_dict()) == policy.contract
    saved = policy.contract.to_dict()
    for edit, match in [
        (lambda c: c["obs"]["keypoint"].update(type="depth"), r"contract.obs.keypoint: ObsSpec.type: expected 'low_dim' or 'rgb', got 'depth'"),
        (lambda c: c["obs"]["keypoint"].update(shape=[0]), r"contract.obs.keypoint: ObsSpec.shape: expected a non-empty tuple"),
        (lambda c: c["action"].update(dim=0), r"contract.action_dim: expected an integer >= 1, got 0"),
        (lambda c: c.pop("objective"), r"contract: expected the fields obs, action, policy and objective, got no \['objective'\]"),
    ]:
        bad = json.loads(json.dumps(saved))
        edit(bad)
        with pytest.raises(ValueError, match=match):
            PolicyContract.from_dict(bad)


def test_a_rollout_leaves_the_caller_s_control_state_as_it_was():
    """A rollout steps its episodes through act() in a control state of its own: a robot loop's history,
    queue and noise stream go on afterwards as if it had not run."""
    from shortcut_policy.evaluation.rollout import rollout

    looped, evaluated = make_policy(), make_policy()
    for policy in (looped, evaluated):
        policy.reset(seed=3)
        policy.act(obs(1.0))
    rollout(evaluated, "push_t", seeds=[0], steps=1, progress=False)
    for _ in range(2 * looped.n_action_steps):
        np.testing.assert_array_equal(looped.act(obs(2.0)), evaluated.act(obs(2.0)))


def test_the_old_api_gets_an_error_that_says_what_replaced_it():
    policy = make_policy()
    with pytest.raises(AttributeError, match=r"Policy.config: .*policy.contract .*policy.meta\['config'\]"):
        policy.config
    config = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}})
    with pytest.raises(TypeError, match=r"contract: expected a PolicyContract .*got RunConfig"):
        Policy(policy.network, policy.normalizer, policy.objective, config)
    with pytest.raises(TypeError, match=r"obs\['k'\]: expected an ObsSpec .*obs_features"):
        build_network(config.policy, {"k": (4,)}, 2)
    with pytest.raises(TypeError, match=r"rgb: expected a list of camera keys, got the string 'img' \(write \['img'\]\)"):
        obs_features({"img": (8, 8, 3)}, rgb="img")
