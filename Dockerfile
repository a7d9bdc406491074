# The story server (python -m aitale.serve) with the exported model and the content screen baked in.
#
#   make image                    # docker build -t aitale-serve .
#   deploy/build-image.sh         # the same with podman, on machines without a Docker daemon or a registry
#
# It needs models/onnx (the export stage) and models/safety (the content screen) from `dvc repro`.
# The base is a build argument: the official slim image by default, or any Debian-like image with
# python3 and its venv module (build-image.sh imports a debootstrapped bookworm one). Debian's own
# python is `python3` only, so nothing here calls `python`.
ARG BASE_IMAGE=python:3.11-slim

# --- build: the pinned wheels in a venv, the code and the models staged with the right modes -------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY requirements-serve.txt /tmp/requirements-serve.txt
# Wheels only: no compiler in the image. --no-deps: exactly the pinned list goes in (transitive packages
# included), nothing unpinned slips in behind it; pip check then fails the build if the list lacks a dependency.
# pip and setuptools leave the venv afterwards: the server needs neither (23 MB).
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-deps --only-binary :all: -r /tmp/requirements-serve.txt \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools
COPY aitale/ /stage/app/aitale/
# .dockerignore keeps out the TorchScript model.pt (the server runs ONNX only) and caches.
# model.onnx (fp32) stays: the default variant `auto` serves seeded requests on it (the determinism contract).
COPY models/onnx/ /stage/models/onnx/
COPY models/safety/ /stage/models/safety/
# The export writes manifest.json (and the screen screen.json) with mode 0600: readable by root only,
# which the server's user is not. Make everything world-readable and nothing writable but by root.
RUN chmod -R a+rX,go-w /stage \
    && /opt/venv/bin/python -m compileall -q /stage/app/aitale

# --- runtime --------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG MODEL_VERSION=""
LABEL org.opencontainers.image.title="aitale-serve" \
      org.opencontainers.image.description="AI Tale story service: OpenAI-style completions and screened stories"
# A fixed numeric id, so that Kubernetes' runAsNonRoot can check it (deploy/k8s/deployment.yaml uses the same).
RUN groupadd --gid 10001 aitale \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin aitale
COPY --from=build /opt/venv /opt/venv
COPY --from=build /stage/app /app
COPY --from=build /stage/models /models
# Every setting is an AITALE_SERVE_* variable (python -m aitale.serve --help). MODEL_DIR points at the
# baked-in bundle; mount a larger export over /models/onnx, or mount it elsewhere and set
# AITALE_SERVE_MODEL_DIR to it. The healthcheck below reads AITALE_SERVE_PORT, so set the port here, not as a flag.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AITALE_SERVE_PORT=8000 \
    AITALE_SERVE_MODEL_DIR=/models/onnx \
    AITALE_SERVE_SCREEN_DIR=/models/safety \
    AITALE_SERVE_MODEL_VERSION=${MODEL_VERSION}
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# No curl in slim images: the image's own python asks /ready (200 once the model is loaded and warmed up).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AITALE_SERVE_PORT', '8000') + '/ready', timeout=4)"]
# SIGTERM drains: no new connections, the requests in flight finish, then exit 0.
STOPSIGNAL SIGTERM
# Listening on 0.0.0.0 is refused unless API keys are set (AITALE_SERVE_API_KEYS or AITALE_SERVE_API_KEYS_FILE;
# the Kubernetes Deployment mounts them from a Secret) or AITALE_SERVE_ALLOW_PUBLIC_WITHOUT_KEYS=true is given
# behind a gateway that authenticates. The security work may add further flags for public addresses.
# Arguments after the image name (docker run ... IMAGE --max-batch 4, or Kubernetes `args`) add flags.
ENTRYPOINT ["/opt/venv/bin/python", "-m", "aitale.serve", "--host", "0.0.0.0"]
