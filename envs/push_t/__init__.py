"""Push-T (gym-pusht 0.1.8): push a T-shaped block onto a goal pose with a round pusher.

Scored as Diffusion Policy scores it: an episode's score is its highest coverage reward, in [0, 1];
success is gym-pusht's ``is_success`` (coverage above 95%).
"""

from ..registry import register_env
from ..spec import EnvSpec, ObsSpec, success_flag
from .env import IMAGE_SIZE, MAX_EPISODE_STEPS, make_push_t


def make_expert(seed: int | None = None, **tuning):
    """The scripted expert (imported when asked for: it needs shapely); ``tuning``: ``ExpertTuning``'s
    fields, e.g. ``near_equal_ratio`` (env.expert_options; configs/env/push_t_multimodal.yaml)."""
    from .expert import PushTExpert

    return PushTExpert(seed=seed, **tuning)


SPEC = register_env(
    EnvSpec(
        name="push_t",
        make=make_push_t,
        obs={
            "state": ObsSpec((5,)),
            "keypoint": ObsSpec((18,)),
            "agent_pos": ObsSpec((2,)),
            "img": ObsSpec((IMAGE_SIZE, IMAGE_SIZE, 3), "rgb"),
        },
        action_dim=2,
        max_episode_steps=MAX_EPISODE_STEPS,
        control_hz=10.0,  # Diffusion Policy's Push-T: one action per 0.1 s
        success=success_flag("is_success"),
        default_obs_keys=("keypoint",),  # the T's 8 corners and the agent (see env.py)
        step_score=lambda reward, info: reward,  # the coverage reward
        score_name="Push-T score (max coverage)",
        make_expert=make_expert,
        demo_keys=("state", "keypoint", "agent_pos"),
    )
)
