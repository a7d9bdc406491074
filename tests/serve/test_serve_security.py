"""Who may call the story service, how much, from which pages, and what it keeps: over real HTTP on loopback."""

import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.serve.serving import serve
from tests.support.repo import REPO

KEYS = ("alpha-key-0123456789", "beta-key-9876543210")
STORY = {"title": "The Tiny Test", "age_group": "3-5", "themes": ["courage"], "style": "bedtime", "max_tokens": 12}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(dvc_project, tmp_path_factory):
    with serve(
        dvc_project,
        tmp_path_factory.mktemp("keyed"),
        api_keys=",".join(KEYS),
        key_rate_per_minute=6,
        key_burst=5,
        key_in_flight=2,
        cors_origins="https://app.example",
    ) as server:
        yield server


def test_a_missing_or_wrong_key_gets_401_and_health_stays_open(keyed):
    with keyed.client() as client:
        missing = client.post("/v1/stories", json=STORY)
        wrong = client.post("/v1/stories", json=STORY, headers=bearer("alpha-key-0123456788"))
        models = client.get("/v1/models")
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
    for response in (missing, wrong, models):
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_openai_client_with_its_api_key_works_as_is(keyed):
    client = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEYS[0])
    done = client.completions.create(model="storyteller", prompt="Once", max_tokens=5, seed=1)
    assert done.choices[0].finish_reason in ("length", "stop", "content_filter")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="not-a-key").models.list()


def test_one_key_past_its_limits_gets_429_and_the_other_keys_do_not(keyed):
    with keyed.client() as client:
        answers = [client.post("/v1/stories", json={**STORY, "seed": i}, headers=bearer(KEYS[1])) for i in range(6)]
        other = client.post("/v1/stories", json={**STORY, "seed": 0}, headers=bearer(KEYS[0]))
    assert [a.status_code for a in answers[:5]] == [200] * 5  # a burst of five, then six a minute
    assert answers[5].status_code == 429 and int(answers[5].headers["Retry-After"]) >= 1
    assert other.status_code == 200


def test_the_cache_is_kept_per_key(keyed):
    body = {**STORY, "seed": 4242}
    with keyed.client() as client:
        first = client.post("/v1/stories", json=body, headers=bearer(KEYS[0]))
        again = client.post("/v1/stories", json=body, headers=bearer(KEYS[0]))
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    time.sleep(11)  # beta's bucket refills (6 a minute)
    with keyed.client() as client:
        other = client.post("/v1/stories", json=body, headers=bearer(KEYS[1]))
    assert other.status_code == 200 and other.headers["X-Cache"] == "miss"
    assert other.json()["text"] == first.json()["text"]  # the same seed, written again for the other key


def test_cors_only_for_configured_origins(keyed):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with keyed.client() as client:
        refused = client.options("/v1/stories", headers={"Origin": "https://evil.example", **preflight})
        allowed = client.options("/v1/stories", headers={"Origin": "https://app.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers and refused.status_code >= 400
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


def test_the_page_is_served_with_browser_rules(keyed):
    page = httpx.get(keyed.url + "/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in page.text and "<style>" not in page.text and "http" not in page.text.split("<body>")[1]


def test_logs_hold_a_request_id_and_timings_but_no_text(dvc_project, tmp_path):
    title = "Zebulon Quartzfeather and the Moon"
    with serve(dvc_project, tmp_path) as server:
        with server.client() as client:
            story = client.post("/v1/stories", json={**STORY, "title": title, "seed": 3}).json()
            client.post(
                "/v1/completions",
                json={"model": "storyteller", "prompt": "Marigold Pennywhistle", "seed": 1, "max_tokens": 8},
            )
        log = server.output()
    assert story["text"]
    assert "Zebulon" not in log and "Quartzfeather" not in log and "Pennywhistle" not in log
    assert all(sentence not in log for sentence in story["text"].split(". ") if len(sentence) > 12)
    assert " POST /v1/stories 200 " in log  # the request was logged: its id, route, status and time


def test_without_keys_the_server_listens_only_on_loopback(dvc_project):
    env = {**os.environ, "AITALE_SERVE_HOST": "0.0.0.0", "AITALE_SERVE_MODEL_DIR": str(dvc_project / "models/onnx")}
    result = subprocess.run(
        [sys.executable, "-m", "aitale.serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no API keys are set, so the server only listens on loopback" in result.stderr
