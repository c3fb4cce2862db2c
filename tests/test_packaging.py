"""A built wheel (not only the source checkout) finds its configs and imports every module."""

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib, pkgutil, sys
import shortcut_policy
from shortcut_policy.utils.paths import config_dir
from hydra import compose, initialize_config_dir
from shortcut_policy.envs import get_env_spec
root = shortcut_policy.__path__[0]
assert root.startswith(sys.argv[1]), root
for mod in pkgutil.walk_packages(shortcut_policy.__path__, "shortcut_policy."):
    importlib.import_module(mod.name)
assert get_env_spec("push_t").make.__module__ == "shortcut_policy.envs.push_t.env"
import shortcut_policy.envs.push_t.env as push_t_env
assert push_t_env.__file__.startswith(sys.argv[1]), push_t_env.__file__
cdir = config_dir()
assert str(cdir).startswith(sys.argv[1]), cdir
with initialize_config_dir(config_dir=str(cdir), version_base=None):
    cfg = compose("train", overrides=["env=push_t", "policy=unet_paper"])
    assert cfg.policy.unet.down_dims == [256, 512, 1024], cfg.policy
    compose("evaluate"); compose("generate_demos")
    image = compose("train_image", overrides=["model=dit_b", "objective=flow_matching_image"])
    assert image.model.hidden == 768 and image.objective.name == "flow_matching", image
    parity = compose("image_parity")
    assert parity.objectives.shortcut.cfg_target is True, parity
from shortcut_policy.config import ImageRunConfig, load_config
load_config(cfg)
load_config(image, ImageRunConfig)
print("ok", cdir)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    (path,) = out.glob("shortcut_policy-*.whl")
    return path


def test_editable_install_finds_the_top_level_envs_folder():
    """``envs/`` sits beside the package in a checkout and is imported as ``shortcut_policy.envs``
    (no top-level ``envs`` module, which would shadow the PyPI package of that name)."""
    code = ("import shortcut_policy.envs.push_t.expert as e, shortcut_policy.envs as p; "
            "import importlib.util as u; print(p.__file__); print(e.__file__); s = u.find_spec('envs'); "
            "print(s is None); print(s and (s.origin, list(s.submodule_search_locations or [])))")
    result = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    package, expert, no_top_level, found = result.stdout.split("\n", 3)
    assert Path(package) == ROOT / "envs" / "__init__.py" and Path(expert) == ROOT / "envs" / "push_t" / "expert.py"
    assert no_top_level == "True", f"a top-level envs module is importable: {found}"


def test_wheel_contains_the_configs_and_envs(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("__init__.py", "spec.py", "registry.py", "push_t/__init__.py", "push_t/env.py", "push_t/expert.py"):
        assert f"shortcut_policy/envs/{name}" in names, name
    for name in ("train.yaml", "evaluate.yaml", "generate_demos.yaml", "env/push_t.yaml", "policy/unet.yaml",
                 "objective/shortcut.yaml", "train/default.yaml", "train_image.yaml", "image_parity.yaml",
                 "model/dit_b.yaml", "dataset/digits.yaml", "eval/image.yaml", "objective/shortcut_image.yaml"):
        assert f"shortcut_policy/configs/{name}" in names, name


def test_installed_wheel_finds_configs_and_imports_everything(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True)
    # -S skips site's .pth files, so an editable install of the checkout cannot shadow the wheel;
    # the dependencies stay importable from site-packages as plain path entries after the wheel.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *site.getsitepackages()])}
    result = subprocess.run(
        [sys.executable, "-S", "-c", CHECK, str(target)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
