"""Meta-World v3 (metaworld 3.1.1, MuJoCo 3.3.0): 50 tabletop tasks for one Sawyer arm, each with a scripted
expert. ``env=metaworld env.task=<task>``; needs the extra: ``pip install -e ".[metaworld]"``.

Scored as Meta-World and the papers score it: an episode succeeds when ``info["success"]`` is 1 at any
step, and ends there (Meta-World never terminates by itself); the score is the success rate.
"""

from ..registry import register_env
from ..spec import EnvSpec, ObsSpec, success_flag
from .env import ACTION_DIM, HAND_DIM, IMAGE_KEY, IMAGE_SIZE, INSTALL_HINT, MAX_EPISODE_STEPS, STATE_DIM, make_metaworld
from .tasks import DEFAULT_TASK, DIFFICULTY_GROUPS, TASKS


def make_expert(seed: int | None = None, task: str = DEFAULT_TASK):
    """Meta-World's shipped scripted policy for ``task`` (deterministic: ``seed`` changes nothing)."""
    from .expert import MetaWorldExpert

    return MetaWorldExpert(task)


SPEC = register_env(
    EnvSpec(
        name="metaworld",
        make=make_metaworld,  # its keywords are the env.options it takes
        obs={"state": ObsSpec((STATE_DIM,)), "hand": ObsSpec((HAND_DIM,)), IMAGE_KEY: ObsSpec((IMAGE_SIZE, IMAGE_SIZE, 3), "rgb")},
        action_dim=ACTION_DIM,
        max_episode_steps=MAX_EPISODE_STEPS,
        control_hz=80.0,  # one action per frame at the env's own render_fps
        success=success_flag("success"),
        default_obs_keys=("state",),
        score_name="success rate",
        make_expert=make_expert,
        demo_keys=("state", "hand"),
        rollout_workers=2,  # MuJoCo stepping dominates a rollout: 2 workers beat in-process (docs/results/metaworld.md)
        tasks=TASKS,
        default_task=DEFAULT_TASK,
        task_groups=DIFFICULTY_GROUPS,
        requires=("metaworld", "mujoco"),
        install_hint=INSTALL_HINT,
    )
)
