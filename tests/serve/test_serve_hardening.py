"""What a careful tester broke in the story service (issue 25), each over real HTTP on loopback."""

import socket
import time

import httpx
import pytest

from tests.serve.serving import serve
from tests.serve.test_serve import events, metric

KEY = "gamma-key-0123456789"
COMPLETION = {"model": "storyteller", "prompt": "Once upon a time", "max_tokens": 8}


@pytest.fixture(scope="module")
def server(story_server):
    return story_server


def test_a_lone_surrogate_gets_the_openai_422_and_the_connection_goes_on(server):
    before = metric(server, "aitale_requests_total", route="/v1/completions", status="422")
    raw = b'{"model": "storyteller", "prompt": "a\\ud800b", "max_tokens": 3}'
    with server.client() as client:  # one connection for both requests
        bad = client.post("/v1/completions", content=raw, headers={"Content-Type": "application/json"})
        after = client.post("/v1/completions", json={**COMPLETION, "seed": 1})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "prompt"
    assert "surrogate" in bad.json()["error"]["message"]
    assert after.status_code == 200
    assert metric(server, "aitale_requests_total", route="/v1/completions", status="422") == before + 1


@pytest.mark.parametrize(
    ("field", "value"), [("seed", "7"), ("stream", 1), ("max_tokens", "5"), ("temperature", "0.5"), ("prompt", 7)]
)
def test_completion_fields_of_the_wrong_type_are_refused(server, field, value):
    with server.client() as client:
        response = client.post("/v1/completions", json={**COMPLETION, field: value})
    assert response.status_code == 422 and response.json()["error"]["param"] == field


def test_a_chunked_body_past_the_limit_gets_413(server):
    def chunks():
        yield b'{"model": "storyteller", "prompt": "'
        for _ in range(20):
            yield b"x" * 5000
        yield b'"}'

    with server.client() as client:
        response = client.post("/v1/completions", content=chunks(), headers={"Content-Type": "application/json"})
        assert client.get("/ready").status_code == 200
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


def test_a_temperature_too_small_for_float32_decodes_greedily(server):
    with server.client() as client:
        greedy = client.post("/v1/completions", json={**COMPLETION, "temperature": 0}).json()
        tiny = client.post("/v1/completions", json={**COMPLETION, "temperature": 1e-40, "seed": 3}).json()
    assert tiny["choices"][0]["text"] == greedy["choices"][0]["text"]


def test_a_cache_hit_counts_against_its_keys_rate(dvc_project, tmp_path):
    body = {"title": "The Tiny Test", "age_group": "3-5", "style": "bedtime", "max_tokens": 8, "seed": 5}
    with serve(dvc_project, tmp_path, api_keys=KEY, key_burst=3, key_rate_per_minute=1) as keyed:
        with keyed.client(headers={"Authorization": f"Bearer {KEY}"}) as client:
            answers = [client.post("/v1/stories", json=body) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers.get("X-Cache") for a in answers[:3]] == ["miss", "hit", "hit"]


def test_without_keys_one_machine_may_load_the_server_past_a_keys_burst(server):
    body = {**COMPLETION, "max_tokens": 2, "seed": 8}
    with server.client() as client:
        statuses = {client.post("/v1/completions", json={**body, "seed": i}).status_code for i in range(30)}
    assert statuses == {200}


def test_only_loopback_host_names_are_served_without_keys(server):
    with server.client() as client:
        rebound = client.get("/v1/models", headers={"Host": f"evil.example:{server.port}"})
        local = client.get("/v1/models", headers={"Host": f"localhost:{server.port}"})
    assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "invalid_host"
    assert local.status_code == 200


def test_api_docs_are_behind_the_key_and_no_page_loads_a_cdn(dvc_project, tmp_path):
    with serve(dvc_project, tmp_path, api_keys=KEY) as keyed:
        with keyed.client() as client:
            schema = client.get("/openapi.json")
            keyed_schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"})
            docs, redoc = client.get("/docs"), client.get("/redoc")
    assert schema.status_code == 401 and keyed_schema.status_code == 200
    assert docs.status_code == 404 and redoc.status_code == 404


def test_a_401_to_an_allowed_origin_carries_cors_headers_and_head_of_the_page_answers(dvc_project, tmp_path):
    with serve(dvc_project, tmp_path, api_keys=KEY, cors_origins="https://app.example") as keyed:
        with keyed.client() as client:
            refused = client.get("/v1/models", headers={"Origin": "https://app.example"})
            head = client.head("/")
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example"
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/html")


def read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def stalled(port: int, data: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(data)
    connection.settimeout(30)
    return connection


def test_stalled_headers_and_bodies_are_timed_out(dvc_project, tmp_path):
    head = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with serve(dvc_project, tmp_path, read_timeout_s=1) as server:
        mid_headers = stalled(server.port, head)
        mid_body = stalled(server.port, head + b'Content-Length: 100\r\n\r\n{"model": ')
        silent = stalled(server.port, b"")
        with mid_headers, mid_body, silent:
            assert read_all(mid_headers) == b""  # closed
            answer = read_all(mid_body)
            assert answer.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in answer
            assert read_all(silent) == b""
        with server.client() as client:
            assert client.get("/ready").status_code == 200


def test_sigterm_does_not_wait_on_a_stalled_upload_and_logs_no_traceback(dvc_project, tmp_path):
    head = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
    with serve(dvc_project, tmp_path, read_timeout_s=2, request_timeout_s=120) as server:
        upload = stalled(server.port, head)
        time.sleep(0.2)
        began = time.monotonic()
        code = server.stop()  # SIGTERM; the helper kills the server after 30 s
        drained_in = time.monotonic() - began
        upload.close()
        log = server.output()
    assert code == 0 and drained_in < 30
    assert "CancelledError" not in log and "Traceback" not in log


def test_clients_that_hang_up_mid_stream_leave_no_pending_tasks(dvc_project, tmp_path):
    body = {"model": "storyteller", "prompt": "Storm", "max_tokens": 40, "min_tokens": 40, "stream": True}
    with serve(dvc_project, tmp_path) as server:
        for i in range(40):
            with httpx.Client(base_url=server.url, timeout=30) as client:
                with client.stream("POST", "/v1/completions", json={**body, "seed": i}) as response:
                    next(response.iter_lines())  # the first event came: hang up
        with server.client() as client:  # the service goes on, and its garbage is collected
            for i in range(20):
                streamed = events(client.post("/v1/completions", json={**body, "seed": 100 + i}))
                assert streamed[-1] == "[DONE]"
        code = server.stop()
        log = server.output()
    assert code == 0
    assert "Task was destroyed but it is pending" not in log and "Traceback" not in log


def test_a_request_sent_again_byte_for_byte_is_answered_from_memory_within_its_keys_limits(dvc_project, tmp_path):
    body = b'{"title": "The Tiny Test", "age_group": "3-5", "max_tokens": 8, "seed": 12}'
    spaced = b'{"title": "The Tiny Test",  "age_group": "3-5", "max_tokens": 8, "seed": 12}'
    with serve(dvc_project, tmp_path, api_keys=KEY, key_burst=4, key_rate_per_minute=1) as keyed:
        with keyed.client(headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}) as client:
            answers = [client.post("/v1/stories", content=b) for b in (body, body, spaced, body, body)]
        written, hits = (
            metric(keyed, "aitale_generated_tokens_total"),
            metric(keyed, "aitale_cache_total", result="hit"),
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert [a.headers.get("X-Cache") for a in answers[:4]] == ["miss", "hit", "hit", "hit"]
    assert answers[1].json() == answers[3].json() == {**answers[0].json(), "cached": True}
    assert hits == 3 and written == answers[0].json()["usage"]["completion_tokens"]  # written once
