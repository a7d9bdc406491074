"""The story service over real HTTP on 127.0.0.1: the real server process, the official openai client,
the tiny project's exported model and content screen."""

import json
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serve.serving import serve
from tests.support.repo import REPO

STORY = {"title": "The Tiny Test", "age_group": "3-5", "themes": ["courage"], "style": "bedtime", "max_tokens": 40}


@pytest.fixture(scope="module")
def server(story_server):
    return story_server


def events(response: httpx.Response) -> list:
    """The server-sent events of a streamed response, in order (``[DONE]`` last)."""
    found = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[6:]
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def metric(server, name: str, **labels) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def in_engine(server) -> float:
    """Requests the engine holds: waiting for a row or in the running batch."""
    return metric(server, "aitale_waiting_requests") + metric(server, "aitale_running_requests")


def test_health_readiness_and_models(server, dvc_project):
    with server.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").status_code == 200
        [model] = client.get("/v1/models").json()["data"]
    manifest = json.loads((dvc_project / "models/onnx/manifest.json").read_text())
    assert model["id"] == "storyteller" and model["variant"] == "auto"
    assert model["sha256"] == manifest["files"]["model.onnx"]["sha256"]  # what seeded requests run on
    assert model["files"]["onnx-int8"] == manifest["files"]["model_int8.onnx"]["sha256"]
    assert model["context"] == 64 and model["generation_defaults"]["max_new_tokens"] == 20


def test_the_openai_client_completes_and_streams_the_same_text(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    done = client.completions.create(model="storyteller", prompt="Once upon a time", max_tokens=12, seed=5)
    assert done.object == "text_completion" and done.usage.completion_tokens >= 1
    streamed = client.completions.create(
        model="storyteller", prompt="Once upon a time", max_tokens=12, seed=5, stream=True
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == done.choices[0].text
    assert chunks[-1].choices[0].finish_reason == done.choices[0].finish_reason


def test_a_story_is_screened_and_the_stream_tells_the_same_story(server):
    with server.client() as client:
        story = client.post("/v1/stories", json={**STORY, "seed": 11}).json()
        with client.stream("POST", "/v1/stories", json={**STORY, "seed": 11, "stream": True}) as response:
            streamed = events(response)
    assert set(story) >= {
        "id",
        "title",
        "text",
        "age_group",
        "themes",
        "style",
        "model",
        "finish_reason",
        "usage",
        "cached",
        "safety",
    }
    assert story["safety"]["safe"] and story["safety"]["attempts"] >= 1 and story["usage"]["completion_tokens"] > 0
    assert streamed[-1] == "[DONE]" and streamed[-2]["object"] == "story"
    chunks = [e for e in streamed if isinstance(e, dict) and e.get("object") == "story.chunk"]
    assert "".join(e["text"] for e in chunks) == streamed[-2]["text"] == story["text"]


def test_the_same_seed_writes_the_same_story_alone_or_in_a_mixed_batch(server):
    def ask(body, out, i):
        with server.client() as client:
            out[i] = client.post("/v1/completions", json=body).json()

    seeded = {"model": "storyteller", "prompt": "The fox and the moon", "max_tokens": 16, "seed": 77}
    with server.client() as client:
        alone = client.post("/v1/completions", json={**seeded, "temperature": 0.9}).json()
    others = [
        {
            "model": "storyteller",
            "prompt": f"A tale number {i}",
            "max_tokens": 16 + i,
            "temperature": 0.5 + i / 10,
            "top_k": 5 + i,
            "seed": i,  # seeded: they run on the same engine, so in the same batch
        }
        for i in range(5)
    ]
    results = [None] * 6
    threads = [
        threading.Thread(target=ask, args=(body, results, i))
        for i, body in enumerate([{**seeded, "temperature": 0.9}, *others])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0]["choices"][0]["text"] == alone["choices"][0]["text"]
    assert metric(server, "aitale_batch_size_count") > 0


def test_seeded_requests_are_cached_unseeded_ones_never(server):
    body = {**STORY, "seed": 321}
    with server.client() as client:
        first, again = client.post("/v1/stories", json=body), client.post("/v1/stories", json=body)
        unseeded = [client.post("/v1/stories", json={**STORY}) for _ in range(2)]
    assert first.headers["X-Cache"] == "miss" and again.headers["X-Cache"] == "hit"
    assert again.json()["cached"] and again.json()["text"] == first.json()["text"]
    assert [r.headers["X-Cache"] for r in unseeded] == ["bypass", "bypass"]


def test_identical_requests_in_flight_share_one_generation(server):
    body = {"model": "storyteller", "prompt": "Coalesce", "max_tokens": 20, "min_tokens": 20, "seed": 9001}
    before = metric(server, "aitale_generated_tokens_total")
    results = [None] * 3

    def ask(i):
        with server.client() as client:
            results[i] = client.post("/v1/completions", json=body)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.json()["choices"][0]["text"] for r in results}) == 1
    assert metric(server, "aitale_generated_tokens_total") - before == 20  # written once


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "storyteller", "prompt": "x", "temperature": 3}, 422, "temperature"),
        ({"model": "storyteller", "prompt": "x", "colour": "blue"}, 422, "colour"),
        ({"model": "storyteller", "prompt": "word " * 200}, 400, "prompt"),
        ({"model": "storyteller", "prompt": "x", "max_tokens": 500}, 400, "max_tokens"),
        ({"model": "no-such-model", "prompt": "x"}, 404, None),
    ],
)
def test_bad_completion_requests_get_the_openai_error_naming_the_field(server, body, status, param):
    with server.client() as client:
        response = client.post("/v1/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and (param is None or error["param"] == param)


def test_bad_story_requests_and_bodies(server):
    with server.client() as client:
        wrong_age = client.post("/v1/stories", json={**STORY, "age_group": "13-15"})
        bad_json = client.post("/v1/stories", content=b"{not json", headers={"Content-Type": "application/json"})
        too_big = client.post("/v1/stories", content=b"x" * 70000, headers={"Content-Type": "application/json"})
        assert client.get("/ready").status_code == 200  # none of it hurt the server
    assert wrong_age.status_code == 422 and wrong_age.json()["error"]["param"] == "age_group"
    assert "'3-5', '6-8' or '9-12'" in wrong_age.json()["error"]["message"]
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    assert too_big.status_code == 413


def test_a_client_that_goes_away_frees_its_row(dvc_project, tmp_path):
    body = {"model": "storyteller", "prompt": "Long", "max_tokens": 60, "min_tokens": 60, "stream": True}
    # an idle engine gathers arrivals for 1 s before it runs: the client is gone before the tiny model could finish
    with serve(dvc_project, tmp_path, gather_ms=1000) as slow:
        with httpx.Client(base_url=slow.url, timeout=30) as client:
            with client.stream("POST", "/v1/completions", json={**body, "temperature": 1.0, "top_k": 0}):
                pass  # the answer has begun (its headers came): hang up before reading it
        deadline = time.monotonic() + 10
        while metric(slow, "aitale_cancellations_total") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metric(slow, "aitale_cancellations_total") == 1
        assert metric(slow, "aitale_running_requests") == 0 and metric(slow, "aitale_waiting_requests") == 0
        with slow.client() as client:  # and the service goes on
            assert client.post("/v1/completions", json={**body, "stream": False, "seed": 1}).status_code == 200


def test_metrics_parse_with_prometheus_client(server):
    with server.client() as client:
        client.post("/v1/completions", json={"model": "storyteller", "prompt": "Hi", "max_tokens": 3, "seed": 1})
    names = {family.name for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text)}
    assert {
        "aitale_requests",
        "aitale_time_to_first_token_seconds",
        "aitale_inter_token_seconds",
        "aitale_queue_wait_seconds",
        "aitale_batch_size",
        "aitale_running_requests",
        "aitale_waiting_requests",
        "aitale_cache",
        "aitale_rejections",
        "aitale_cancellations",
    } <= names
    assert metric(server, "aitale_requests_total", route="/v1/completions", status="200") >= 1


def test_overload_queue_wait_and_deadline_statuses(dvc_project, tmp_path):
    long = {"model": "storyteller", "prompt": "Slow", "max_tokens": 60, "min_tokens": 60, "temperature": 1.0}
    # an idle engine gathers arrivals for a second: the first request is in flight all that time
    with serve(dvc_project, tmp_path, max_in_flight=1, max_batch=1, gather_ms=1000) as one_at_a_time:
        result = {}

        def ask_first():
            with one_at_a_time.client() as client:
                result["first"] = client.post("/v1/completions", json={**long, "seed": 0})

        first = threading.Thread(target=ask_first)
        first.start()
        while first.is_alive() and in_engine(one_at_a_time) < 1:
            time.sleep(0.01)
        with one_at_a_time.client() as client:
            refused = client.post("/v1/completions", json={**long, "seed": 1})
        first.join()
        assert result["first"].status_code == 200
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    # one row: a request that waits past its 50 ms for a row gets 503 (the first may too: its wait includes the
    # idle engine's gathering), and the service goes on
    with serve(dvc_project, tmp_path, max_batch=1, queue_timeout_s=0.05, gather_ms=300) as one_row:
        results = [None, None]

        def ask_one_row(i):
            with one_row.client() as client:
                results[i] = client.post("/v1/completions", json={**long, "seed": i})

        threads = [threading.Thread(target=ask_one_row, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in results)
        assert statuses in ([200, 503], [503, 503]), statuses
        assert all(
            r.json()["error"]["code"] == "overloaded" and r.headers["Retry-After"]
            for r in results
            if r.status_code == 503
        )
        with one_row.client() as client:
            assert client.get("/ready").status_code == 200
    # a deadline shorter than the engine's gathering: every request runs past it
    with serve(dvc_project, tmp_path, request_timeout_s=0.2, gather_ms=300) as strict:
        with strict.client() as client:
            late = client.post("/v1/completions", json={**long, "seed": 4})
            with client.stream("POST", "/v1/completions", json={**long, "stream": True, "seed": 5}) as response:
                streamed = events(response)
            assert client.get("/ready").status_code == 200
    assert late.status_code == 504 and late.json()["error"]["code"] == "timeout"
    assert streamed[-1] == "[DONE]" and "error" in streamed[-2]  # a stream past its deadline ends with an error


def test_not_ready_until_the_model_loads_and_still_alive_when_it_cannot(dvc_project, tmp_path):
    with serve(dvc_project, tmp_path, ready=False, model_dir=tmp_path / "missing") as broken:
        deadline, ready = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{broken.url}/ready", timeout=2)
                if ready.json()["status"] == "failed":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready.status_code == 503 and "missing" in ready.json()["error"]
        assert httpx.get(f"{broken.url}/health").status_code == 200
        assert httpx.post(f"{broken.url}/v1/stories", json=STORY).status_code == 503


def test_sigterm_drains_the_requests_in_flight(dvc_project, tmp_path):
    body = {"model": "storyteller", "prompt": "Drain", "max_tokens": 50, "min_tokens": 50, "seed": 2, "stream": True}
    with serve(dvc_project, tmp_path) as server:
        codes = []
        stopper = threading.Thread(target=lambda: codes.append(server.stop()))
        with (
            server.client() as client,
            client.stream(
                "POST", "/v1/completions", json={**body, "stream_options": {"include_usage": True}}
            ) as response,
        ):
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            stopper.start()  # SIGTERM while the answer is being written: the server must finish it
            rest = [line[6:] for line in lines if line.startswith("data: ")]
        stopper.join()
    assert response.status_code == 200 and json.loads(first[6:])["choices"]
    assert rest[-1] == "[DONE]" and json.loads(rest[-2])["usage"]["completion_tokens"] == 50
    assert codes == [0]


def test_the_server_loads_no_torch(dvc_project):
    script = (
        "import sys; from aitale.serve.settings import ServeSettings; from aitale.serve.app import create_app; "
        "from aitale.serve.metrics import Metrics; from aitale.serve.service import Service; "
        f"s = Service(ServeSettings(model_dir={str(dvc_project / 'models/onnx')!r}, "
        f"screen_dir={str(dvc_project / 'models/safety')!r}), Metrics()); s.close(); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
