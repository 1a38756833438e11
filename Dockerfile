# syntax=docker/dockerfile:1
# sagemaker-callback-worker: `callback-worker run` under tini, as UID 10001, on a read-only root filesystem.
#
#   docker build -t sagemaker-callback-worker:0.1.0 .
#   docker run --read-only -e CALLBACK_WORKER_QUEUE_URL=... -e AWS_REGION=... sagemaker-callback-worker:0.1.0
#
# The same image serves the emulator: `docker run ... sagemaker-callback-worker:0.1.0 emulate --host 0.0.0.0`.

# ---- build: install the distribution and its dependencies into a virtual environment --------------------------
FROM python:3.12.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
RUN python -m venv /opt/venv
# The runtime dependencies first, exactly as locked: every pin with its hashes (pip refuses any file whose hash is not
# listed, and any requirement without a pin and a hash). Regenerate the lock with the command in its header.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY config ./config
COPY worker ./worker
COPY handlers ./handlers
COPY callback_worker ./callback_worker
COPY emulator ./emulator
# The project itself without dependencies (nothing unlocked comes in), then `pip check`: the lock satisfies every
# range in pyproject.toml. pip compiles every module it installs, so the runtime stage never writes bytecode.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /src \
    && /opt/venv/bin/pip check

# ---- runtime: the virtual environment, tini and nothing else --------------------------------------------------
FROM python:3.12.11-slim-bookworm

LABEL org.opencontainers.image.title="sagemaker-callback-worker" \
      org.opencontainers.image.description="Completes Amazon SageMaker Pipelines callback steps from an SQS queue." \
      org.opencontainers.image.licenses="Apache-2.0"

RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 worker \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin worker

COPY --from=build /opt/venv /opt/venv

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time, so Python must not try to write .pyc files.
# CALLBACK_WORKER_HEALTH_PORT: /healthz, /readyz and /metrics are on in the image (the worker's default is off).
# CALLBACK_WORKER_HEALTH_HOST: on every interface of the container, so that probes and Prometheus reach it on the
# container's own address (a bare `callback-worker run` listens on 127.0.0.1 only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CALLBACK_WORKER_HEALTH_PORT=8080 \
    CALLBACK_WORKER_HEALTH_HOST=0.0.0.0

WORKDIR /
USER 10001:10001
EXPOSE 8080

# Python's urllib instead of curl: the image has no curl. The empty ProxyHandler keeps HTTP(S)_PROXY away from
# 127.0.0.1. An HTTP error (503 from a stuck worker) or a refused connection exits 1: unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + os.environ.get('CALLBACK_WORKER_HEALTH_PORT', '8080') + '/healthz', timeout=4)"]

# tini is PID 1: it forwards SIGTERM to the worker (which then drains) and reaps orphaned children.
ENTRYPOINT ["tini", "--", "callback-worker"]
CMD ["run"]
