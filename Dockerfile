# syntax=docker/dockerfile:1
# sagemaker-callback-worker: `callback-worker run` under dumb-init, as UID 10001, on a read-only root filesystem.
#
#   docker build -t sagemaker-callback-worker:0.1.0 .
#   docker run --read-only -e CALLBACK_WORKER_QUEUE_URL=... -e AWS_REGION=... sagemaker-callback-worker:0.1.0
#
# The daemon's image holds no emulator. The local SageMaker Pipelines emulator is a separate target:
#
#   docker build --target emulator -t sagemaker-pipelines-emulator:0.1.0 .
#
# Offline builds: every Python package can come from a local wheelhouse (a directory of wheels, such as
# `pip download --require-hashes -r requirements.lock -d wheels` writes, plus setuptools for building the project)
# given as the build context `wheelhouse`; the build then never asks a package index:
#
#   docker buildx build --build-context wheelhouse=./wheels -t sagemaker-callback-worker:0.1.0 .
#   buildah bud --build-context wheelhouse=./wheels -t sagemaker-callback-worker:0.1.0 .
#
# No stage installs operating-system packages: the init process (dumb-init) is a locked Python wheel.

# The base of every stage. The default is the official image, pinned. `make image-test` substitutes a stand-in built
# from Debian's own packages (mmdebstrap: python3, python3-venv, ca-certificates), for tests only: it is not a
# supported base for deployments.
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

# ---- wheelhouse: empty unless the build context `wheelhouse` replaces it --------------------------------------
FROM scratch AS wheelhouse

# ---- build: install the distribution and its dependencies into a virtual environment --------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# Two environments: /opt/venv, what the image runs, holds neither pip nor setuptools (the worker needs neither, and
# they are a quarter of its size); /opt/pip holds the pip that installs into it (`pip --python`).
RUN python3 -m venv /opt/pip \
    && python3 -m venv --without-pip /opt/venv
# The runtime dependencies first, exactly as locked: every pin with its hashes (pip refuses any file whose hash is not
# listed, and any requirement without a pin and a hash). Regenerate the lock with the command in its header.
# With wheels in /wheelhouse, pip takes them from there and asks no index (--no-index).
COPY requirements.lock ./
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    if [ -n "$(ls -A /wheelhouse)" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; fi \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY config ./config
COPY worker ./worker
COPY handlers ./handlers
COPY callback_worker ./callback_worker
# The project itself without dependencies (nothing unlocked comes in), then `pip check`: the lock satisfies every
# range in pyproject.toml. pip compiles every module it installs, so the runtime stage never writes bytecode.
# The `emulator` package is not in this stage's /src, so the daemon's distribution is built without it.
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    if [ -n "$(ls -A /wheelhouse)" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; fi \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-deps /src \
    && /opt/pip/bin/pip --python /opt/venv/bin/python check

# ---- emulator-build: the same environment, the distribution rebuilt with the `emulator` package ----------------
FROM build AS emulator-build
COPY emulator ./emulator
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    if [ -n "$(ls -A /wheelhouse)" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; fi \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-deps --force-reinstall /src \
    && /opt/pip/bin/pip --python /opt/venv/bin/python check

# ---- runtime: what both images share --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time, so Python must not try to write .pyc files.
# No user is added to /etc/passwd: the numeric USER is what runAsNonRoot checks, and nothing here looks the name up.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /
USER 10001:10001

# ---- emulator: `callback-worker emulate`, the local SageMaker Pipelines endpoint (not for production) ----------
FROM runtime AS emulator

LABEL org.opencontainers.image.title="sagemaker-pipelines-emulator" \
      org.opencontainers.image.description="A local SageMaker Pipelines endpoint that sends real callback messages to SQS."

COPY --from=emulator-build /opt/venv /opt/venv
EXPOSE 4599
ENTRYPOINT ["dumb-init", "--single-child", "--", "callback-worker"]
CMD ["emulate", "--host", "0.0.0.0", "--port", "4599"]

# ---- the daemon (the default target, last) --------------------------------------------------------------------
FROM runtime AS worker

LABEL org.opencontainers.image.title="sagemaker-callback-worker" \
      org.opencontainers.image.description="Completes Amazon SageMaker Pipelines callback steps from an SQS queue."

COPY --from=build /opt/venv /opt/venv

# CALLBACK_WORKER_HEALTH_PORT: /healthz, /readyz and /metrics are on in the image (the worker's default is off).
# CALLBACK_WORKER_HEALTH_HOST: on every interface of the container, so that probes and Prometheus reach it on the
# container's own address (a bare `callback-worker run` listens on 127.0.0.1 only).
ENV CALLBACK_WORKER_HEALTH_PORT=8080 \
    CALLBACK_WORKER_HEALTH_HOST=0.0.0.0

EXPOSE 8080

# Python's urllib instead of curl: the image has no curl. The empty ProxyHandler keeps HTTP(S)_PROXY away from
# 127.0.0.1. An HTTP error (503 from a stuck worker) or a refused connection exits 1: unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + os.environ.get('CALLBACK_WORKER_HEALTH_PORT', '8080') + '/healthz', timeout=4)"]

# dumb-init is PID 1: it forwards SIGTERM to the worker alone (--single-child; the worker stops its own children
# while it drains) and reaps orphaned processes. The worker's exit code is the container's.
ENTRYPOINT ["dumb-init", "--single-child", "--", "callback-worker"]
CMD ["run"]
