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
from shortcut_policy.paths import config_dir
from hydra import compose, initialize_config_dir
root = shortcut_policy.__path__[0]
assert root.startswith(sys.argv[1]), root
for mod in pkgutil.walk_packages(shortcut_policy.__path__, "shortcut_policy."):
    importlib.import_module(mod.name)
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


def test_wheel_contains_the_configs(wheel):
    names = zipfile.ZipFile(wheel).namelist()
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
