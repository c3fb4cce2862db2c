"""robosuite 1.5 tasks in robomimic's form: ``env=robosuite env.task=lift|can|square``; needs the extra:
``pip install -e ".[robosuite]"``.

Observation keys and actions are robomimic's (``env.py``), so a policy trained on a store imported from
a robomimic file (``python -m shortcut_policy.import_robomimic``) rolls out here unchanged.
``env.options.absolute_actions=true`` rolls out policies trained on absolute actions (an import with
``abs_action=true``). Scored as robomimic scores it: an episode succeeds when the task's success check
holds at any step, and ends there.
"""

from typing import Any, Mapping

from ..registry import register_env
from ..spec import EnvSpec, ObsSpec, success_flag
from .actions import ABS_ACTION_DIM, DELTA_ACTION_DIM
from .env import (
    CAMERAS,
    CONTROL_FREQ,
    DEFAULT_TASK,
    IMAGE_SIZE,
    INSTALL_HINT,
    LOW_DIM,
    MAX_EPISODE_STEPS,
    OBJECT_DIM,
    TASKS,
    check_store,
    image_key,
    make_robosuite,
)
from .recording import RobomimicFileRecorder


def observations(task: str) -> dict[str, ObsSpec]:
    obs = {key: ObsSpec(shape) for key, shape in LOW_DIM.items()}
    obs["object"] = ObsSpec((OBJECT_DIM[task],))
    for camera in CAMERAS:
        obs[image_key(camera)] = ObsSpec((IMAGE_SIZE, IMAGE_SIZE, 3), "rgb")
    return obs


def variant(task: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The object's size differs by task; absolute actions are 10 numbers, delta ones 7."""
    task = task or DEFAULT_TASK
    return {"obs": observations(task), "max_episode_steps": MAX_EPISODE_STEPS[task],
            "action_dim": ABS_ACTION_DIM if options.get("absolute_actions") else DELTA_ACTION_DIM}


def make_action_converter(env_args: Mapping[str, Any], options: Mapping[str, Any]):
    """Recorded delta actions -> absolute ones when the options ask for them; None: keep them."""
    if not options.get("absolute_actions"):
        return None
    from .actions import AbsoluteActionConverter

    return AbsoluteActionConverter(env_args)


def make_expert(seed: int | None = None, task: str = DEFAULT_TASK):
    """The scripted pick-and-place expert of ``task`` (``expert.py``)."""
    from .expert import RobosuiteExpert

    return RobosuiteExpert(task, seed)


SPEC = register_env(
    EnvSpec(
        name="robosuite",
        make=make_robosuite,  # its keywords are the env.options it takes
        obs=observations(DEFAULT_TASK),
        action_dim=DELTA_ACTION_DIM,
        max_episode_steps=MAX_EPISODE_STEPS[DEFAULT_TASK],
        control_hz=float(CONTROL_FREQ),  # robomimic's OSC controller rate
        success=success_flag("success"),
        # Diffusion Policy's low-dim robomimic keys
        default_obs_keys=("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"),
        score_name="success rate",
        make_expert=make_expert,
        demo_keys=("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"),
        # demonstrations go through a robomimic file (as a user's would), recorded with delta actions; an
        # absolute-action store is converted on import
        demo_recorder=RobomimicFileRecorder(),
        rollout_workers=2,  # rollouts step faster in 2 worker processes than in-process (docs/results/robosuite.md)
        rollout_envs=16,  # an env with cameras holds a renderer per camera: too much memory for 50 at once
        tasks=tuple(TASKS),
        default_task=DEFAULT_TASK,
        variant=variant,
        check_store=check_store,
        make_action_converter=make_action_converter,
        requires=("robosuite", "mujoco", "h5py"),
        install_hint=INSTALL_HINT,
    )
)
