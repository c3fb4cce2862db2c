"""The learning curve of a long run: periodic evaluations against samples seen, Diffusion Policy's two
summaries (best, mean of the last k), and a resume that keeps one curve and marks where it went on."""

import json

import pytest

from shortcut_policy.config import load_config
from shortcut_policy.data.demos import generate_demos
from shortcut_policy.evaluation.curve import eval_key, summarize, write_curve
from shortcut_policy.training.resume import record_resume, resumed_steps
from shortcut_policy.training.trainer import Trainer, run

TINY = {"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}}


def evaluation(step, score, success):
    return {"step": step, "samples": step * 8, "elapsed_s": step / 10,
            eval_key("score", 1): score, eval_key("success", 1): success}


def test_the_summaries_are_the_best_evaluation_and_the_mean_of_the_last_k():
    records = [evaluation(10, 0.5, 0.2), {"step": 15, "loss": 1.0}, evaluation(20, 0.9, 0.6),
               evaluation(30, 0.7, 0.4), evaluation(40, 0.6, 0.2), evaluation(50, 0.9, 0.8)]
    summary = summarize(records, 1, last_k=3)
    assert summary["evaluations"] == 5
    assert summary["best"] == {"score": 0.9, "success": 0.6, "step": 20, "samples": 160}  # the earliest of equal scores
    last = summary["last_k"]
    assert (last["k"], last["from_step"], last["to_step"]) == (3, 30, 50)
    assert last["score"] == pytest.approx((0.7 + 0.6 + 0.9) / 3) and last["success"] == pytest.approx((0.4 + 0.2 + 0.8) / 3)
    fewer = summarize(records, 1, last_k=10)["last_k"]
    assert (fewer["k"], fewer["asked_k"], fewer["from_step"]) == (5, 10, 10)  # fewer made than asked: said
    assert summarize(records, 2, last_k=3) is None  # nothing evaluated at 2 steps


def test_records_of_a_run_from_before_success_was_logged_still_draw(tmp_path):
    """A run resumed from older code logged only the score: its curve still draws (no success there)."""
    budget = {"steps": 30, "batch_size": 8, "samples": 240, "windows": 100, "epochs": 2.4, "wall_s": 3.0,
              "device_kind": "CPU", "device": "cpu"}
    records = [{"step": 10, eval_key("score", 1): 0.4}, {"step": 20, eval_key("score", 1): 0.5}, evaluation(30, 0.6, 0.2)]
    paths = write_curve(tmp_path, records, [1], 5, [20], "t", budget)
    curve = json.loads(paths["curve_json"].read_text())
    assert [e["step"] for e in curve["evaluations"]] == [10, 20, 30] and paths["curve_plot"].stat().st_size > 0
    assert curve["summaries"][0]["last_k"]["success"] is None  # not every evaluation has one: no mean is made up


def test_a_finished_run_read_again_marks_no_resume(tmp_path):
    record_resume(tmp_path, {}, 100, 100)  # a comparison reusing a finished run: nothing trained, nothing recorded
    assert not (tmp_path / "resumes.jsonl").exists()
    record_resume(tmp_path, {"train.eval_episodes": (50, 20)}, 100, 100)  # the change is recorded ...
    record_resume(tmp_path, {"train.num_steps": (100, 200)}, 100, 200)
    assert len((tmp_path / "resumes.jsonl").read_text().splitlines()) == 2
    assert resumed_steps(tmp_path) == [100]  # ... but only the resume that trained on is a mark on the curve


def test_a_non_finite_evaluation_is_refused_and_nothing_is_written(tmp_path):
    budget = {"steps": 20, "batch_size": 8, "samples": 160, "windows": 100, "epochs": 1.6, "wall_s": 2.0,
              "device_kind": "CPU", "device": "cpu"}
    with pytest.raises(ValueError, match=r"learning curve: eval_score_1step at step 20 is nan, not a finite number"):
        write_curve(tmp_path, [evaluation(10, 0.5, 0.2), evaluation(20, float("nan"), 0.2)], [1], 5, [], "t", budget)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_run_stopped_and_resumed_keeps_one_curve_with_its_budget_and_the_resume_marked(tmp_path):
    store = tmp_path / "push_t.zarr"
    generate_demos("push_t", episodes=2, seed=100_000, out=store, progress=False)
    run_dir = tmp_path / "run"

    def config(num_steps, **train):
        return load_config({**TINY, "env": {"dataset": str(store)}, "run_dir": str(run_dir),
                            "train": {"num_steps": num_steps, "batch_size": 16, "warmup_steps": 5, "log_every": 10,
                                      "val_every": 10, "checkpoint_every": 10, "eval_every": 10, "eval_episodes": 0,
                                      "periodic_eval_episodes": 1, "periodic_eval_steps": [1, 2], "curve_last_k": 2,
                                      **train}})

    run(config(20), run_dir, progress=False)
    first = json.loads((run_dir / "eval" / "curve.json").read_text())
    assert [e["step"] for e in first["evaluations"]] == [10, 20] and first["resumed_at_steps"] == []
    spent_at_stop = first["budget"]["wall_s"]
    paths = run(config(40, resume=True), run_dir, progress=False)  # more steps: resumed from step 20

    curve = json.loads(paths["curve_json"].read_text())
    assert paths["curve_plot"].stat().st_size > 0
    evaluations = curve["evaluations"]
    assert [e["step"] for e in evaluations] == [10, 20, 30, 40]  # every eval_every, and the last step
    assert [e["samples"] for e in evaluations] == [160, 320, 480, 640]
    times = [e["elapsed_s"] for e in evaluations]
    assert times[:2] == [e["elapsed_s"] for e in first["evaluations"]]  # the records before the resume are kept
    assert times[1] <= spent_at_stop < times[2] < times[3]  # and the time goes on from the checkpoint's
    assert 0 < evaluations[-1]["eval_s"] < times[-1]  # the rollouts' share of it
    assert curve["resumed_at_steps"] == [20]
    for e in evaluations:
        assert 0 <= e[eval_key("score", 1)] <= 1 and e[eval_key("success", 2)] in (0.0, 1.0)
    budget = curve["budget"]
    assert (budget["steps"], budget["batch_size"], budget["samples"]) == (40, 16, 640)
    assert budget["epochs"] == pytest.approx(640 / budget["windows"]) and budget["device_kind"] == "CPU"
    assert "40 steps x batch 16 = 640 samples" in budget["line"] and "CPU-hours" in budget["line"]
    by_steps = {s["steps"]: s for s in curve["summaries"]}
    assert set(by_steps) == {1, 2}
    scores = [e[eval_key("score", 1)] for e in evaluations]
    assert by_steps[1]["best"]["score"] == max(scores)
    assert by_steps[1]["last_k"]["score"] == pytest.approx((scores[2] + scores[3]) / 2)


def test_a_periodic_budget_the_objective_cannot_sample_with_is_refused_before_training(tmp_path):
    config = load_config({**TINY, "objective": {"name": "shortcut"}, "run_dir": str(tmp_path / "run"),
                          "train": {"eval_every": 10, "periodic_eval_steps": [3]}})
    with pytest.raises(ValueError, match=r"^train.periodic_eval_steps: expected a power of two from 1 to 128 .*got 3"):
        Trainer(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
