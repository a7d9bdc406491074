"""`python -m stages.tell` on the tiny project's models: a screened story, repeatable by seed, refused when unsafe."""

import json
import shutil
import subprocess
import sys

from tests.support.repo import REPO

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
    # the screen judges the title first: here it fails too, so nothing is written
    assert "the title does not pass the content screen for ages 3-5" in refused.stderr
    assert "(classifier): score" in refused.stderr


def test_a_bad_request_is_refused_before_any_model_loads(dvc_project):
    bad = tell(dvc_project, "--title", "X", "--age-group", "4-6", "--style", "fable", "--model", "/nonexistent")
    assert bad.returncode == 2 and "--age-group '4-6': Input should be '3-5', '6-8' or '9-12'" in bad.stderr
    missing = tell(dvc_project, *STORY, "--screen", str(dvc_project / "nowhere"))
    assert missing.returncode == 2 and "no content screen here" in missing.stderr


def test_tell_has_help():
    shown = subprocess.run([sys.executable, "-m", "stages.tell", "--help"], cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0 and "--age-group" in shown.stdout and "content screen" in shown.stdout


def test_redraws_past_the_servers_cap_are_refused_before_any_model_loads(dvc_project):
    huge = tell(dvc_project, *STORY, "--redraws", "1000000000")
    assert huge.returncode == 2 and "--redraws" in huge.stderr and "at most 10" in huge.stderr
    assert "Traceback" not in huge.stderr


def test_a_missing_model_is_one_clear_line(dvc_project):
    for variant in ("pytorch", "onnx"):
        missing = tell(dvc_project, *STORY, "--model", "/nonexistent", "--variant", variant)
        assert missing.returncode == 2 and "/nonexistent" in missing.stderr, missing.stderr
        assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_a_story_without_style_or_themes_is_written_unconditioned_on_them(dvc_project):
    told = tell(dvc_project, "--title", "The Moon Hare", "--age-group", "6-8", "--seed", "3", "--format", "json")
    assert told.returncode == 0, told.stderr
    story = json.loads(told.stdout)
    assert story["style"] is None and story["themes"] == [] and story["text"]
    assert story["unconditioned"] == ["style", "themes"]
    themed = tell(dvc_project, "--title", "The Moon Hare", "--age-group", "6-8", "--theme", "courage", "--seed", "3")
    assert themed.returncode == 0, themed.stderr
    shown = tell(dvc_project, "--title", "The Moon Hare", "--age-group", "6-8", "--format", "markdown")
    assert "*A story for ages 6-8 (any theme)" in shown.stdout
