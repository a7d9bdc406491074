"""`python -m stages.tell` on the tiny project's models: a screened story, repeatable by seed, refused when unsafe."""

import json
import shutil
import subprocess
import sys

from tests.helpers import REPO

STORY = ["--title", "The Lantern Fox", "--age-group", "3-5", "--theme", "kindness", "--style", "bedtime"]


def tell(project, *args):
    return subprocess.run([sys.executable, "-m", "stages.tell", *args], cwd=project, capture_output=True, text=True)


def test_a_story_passes_the_screen_and_the_same_seed_tells_it_again(dvc_project):
    first = tell(dvc_project, *STORY, "--seed", "5", "--format", "json")
    assert first.returncode == 0, first.stderr
    story = json.loads(first.stdout)
    assert story["title"] == "The Lantern Fox" and story["age_group"] == "3-5" and story["themes"] == ["kindness"]
    assert story["text"] and story["safety"]["safe"] is True and story["safety"]["age_group"] == "3-5"
    assert story["usage"]["completion_tokens"] > 0 and story["model"] == "storyteller:pytorch"
    again = tell(dvc_project, *STORY, "--seed", "5", "--format", "json")
    assert json.loads(again.stdout)["text"] == story["text"]
    onnx = tell(dvc_project, *STORY, "--seed", "5", "--variant", "onnx", "--format", "markdown")
    assert onnx.returncode == 0, onnx.stderr
    assert onnx.stdout.startswith("# The Lantern Fox\n\n*A bedtime for ages 3-5 (kindness); seed 5.*")


def test_a_story_no_draw_of_which_passes_is_refused_with_reasons(dvc_project, tmp_path):
    strict = tmp_path / "strict"
    shutil.copytree(dvc_project / "models/safety", strict)
    bundle = json.loads((strict / "screen.json").read_text())
    bundle["thresholds"] = {age: dict.fromkeys(limits, 1e-9) for age, limits in bundle["thresholds"].items()}
    (strict / "screen.json").write_text(json.dumps(bundle))
    refused = tell(dvc_project, *STORY, "--seed", "5", "--screen", str(strict), "--redraws", "2")
    assert refused.returncode == 3 and refused.stdout == ""
    assert "passed the content screen for ages 3-5 in 3 attempts" in refused.stderr
    assert "(classifier): score" in refused.stderr and "for ages 3-5" in refused.stderr


def test_a_bad_request_is_refused_before_any_model_loads(dvc_project):
    bad = tell(dvc_project, "--title", "X", "--age-group", "4-6", "--style", "fable", "--model", "/nonexistent")
    assert bad.returncode == 2 and "--age-group '4-6': Input should be '3-5', '6-8' or '9-12'" in bad.stderr
    missing = tell(dvc_project, *STORY, "--screen", str(dvc_project / "nowhere"))
    assert missing.returncode == 2 and "no content screen here" in missing.stderr


def test_tell_has_help():
    shown = subprocess.run([sys.executable, "-m", "stages.tell", "--help"], cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0 and "--age-group" in shown.stdout and "content screen" in shown.stdout
