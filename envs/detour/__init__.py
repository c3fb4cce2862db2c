"""Detour: a synthetic task with bimodal demonstrations (left or right of a disc), for fast studies of
how one-step policies handle several ways to act. Scored by success (the goal reached)."""

from ..registry import register_env
from ..spec import EnvSpec, ObsSpec, success_flag
from .env import MAX_EPISODE_STEPS, make_detour


def make_expert(seed: int | None = None):
    from .expert import DetourExpert

    return DetourExpert(seed=seed)


SPEC = register_env(
    EnvSpec(
        name="detour",
        make=make_detour,
        obs={"pos": ObsSpec((2,)), "goal": ObsSpec((2,))},
        action_dim=2,
        max_episode_steps=MAX_EPISODE_STEPS,
        control_hz=10.0,  # a planar toy: Push-T's rate
        success=success_flag("reached"),
        default_obs_keys=("pos", "goal"),
        make_expert=make_expert,
        demo_keys=("pos", "goal"),
    )
)
