"""env.expert_options: the scripted expert's tuning, checked at once, bound into make_expert, and
recorded in (and compared against) its own demonstration store."""

import dataclasses

import pytest

from shortcut_policy.config import load_config
from shortcut_policy.data.demos import default_dataset_path, ensure_dataset


def test_options_reach_the_expert_and_name_their_own_store():
    env = load_config({"env": {"name": "push_t", "expert_options": {"near_equal_ratio": 0.5}}}).env
    spec = env.spec()
    assert spec.make_expert(0).cfg.near_equal_ratio == 0.5
    assert load_config({}).env.spec().make_expert(0).cfg.near_equal_ratio == 0.85  # the default tuning
    assert default_dataset_path(spec).name == "push_t_expert_near_equal_ratio=0.5.zarr"
    assert default_dataset_path(load_config({}).env.spec()).name == "push_t_expert.zarr"
    # plot titles tell the two data sets apart
    assert spec.label == "push_t (expert near_equal_ratio=0.5)"
    assert load_config({}).env.spec().label == "push_t"
    both = dataclasses.replace(spec, options={"absolute_actions": True})  # the env's own options are named first
    assert both.label == "push_t (absolute_actions=True; expert near_equal_ratio=0.5)"


@pytest.mark.parametrize(
    "env, match",
    [
        ({"name": "push_t", "expert_options": {"speed": 2}}, "env.expert_options: the push_t expert does not take {'speed': 2}"),
        ({"name": "detour", "expert_options": {"side": 1}}, "env.expert_options: the detour expert does not take"),
        ({"name": "push_t", "expert_options": {"near_equal_ratio": "0.5"}}, "near_equal_ratio: expected a number, got '0.5'"),
        ({"name": "push_t", "expert_options": {"route_tie_ratio": True}}, "route_tie_ratio: expected a number, got True"),
    ],
)
def test_an_option_the_expert_does_not_take_is_refused_before_any_work(env, match):
    with pytest.raises(ValueError, match=match):
        load_config({"env": env}).env.spec()


def test_a_store_made_with_other_options_is_not_trained_on_by_mistake(tmp_path, monkeypatch):
    monkeypatch.setenv("SHORTCUT_POLICY_DATA", str(tmp_path))
    plain = load_config({"env": {"name": "detour", "demo_episodes": 3}}).env
    path = ensure_dataset(plain, progress=False)
    assert path == tmp_path / "detour_expert.zarr"
    # the same path holding a store made with other options (an edited store): refused, naming the options
    import zarr

    root = zarr.open_group(str(path), mode="r+")
    assert root.attrs["expert_options"] == {}
    root.attrs["expert_options"] = {"tuned": 1}
    with pytest.raises(ValueError, match="with expert options {'tuned': 1}"):
        ensure_dataset(plain, progress=False)


def test_options_that_are_not_a_mapping_are_refused():
    from shortcut_policy.envs import get_env_spec

    for bad in (0, "ab", [("near_equal_ratio", 0.5)]):
        with pytest.raises(ValueError, match="env.expert_options: expected a mapping"):
            get_env_spec("push_t").configure(expert_options=bad)
