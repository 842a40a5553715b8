# The digit-classification service: FastAPI + the shipped CPU models, run by uvicorn.
#
#   docker build -t equivariant-digits .
#   docker run --rm -p 8000:8000 equivariant-digits        # then open http://127.0.0.1:8000/
#
# Build arguments:
#   TORCH_VERSION    the PyTorch release to serve with (default 2.13.0, CPU build).
#   TORCH_INDEX_URL  where torch comes from: PyTorch's CPU wheel index by default.
#                    Pass an empty value (--build-arg TORCH_INDEX_URL=) where only the
#                    default package index (or a mirror / find-links folder) is reachable.
#                    Note that PyPI's own Linux torch wheel is the CUDA build (several GB).
#
# Layers go from least to most often changed: system user, torch, the other runtime
# dependencies (read from pyproject.toml), then the code and weights, so that editing
# the code rebuilds only the last, small layers.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app

# CPU torch, checked to be a CPU build. The wheel also ships C++ headers and test
# binaries (~200 MB) that only building extensions or testing torch itself needs;
# the service runs eager inference, so they go in the same layer.
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        python -m pip install --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"; \
    else \
        python -m pip install "torch==${TORCH_VERSION}"; \
    fi \
    && python -c "import torch; assert not torch.version.cuda, 'expected a CPU build of torch, got CUDA ' + torch.version.cuda" \
    && site=$(python -c "import os, torch; print(os.path.dirname(torch.__file__))") \
    && rm -rf "$site/include" "$site/test" "$site"/bin/test_* "$site"/bin/*Test "$site"/bin/protoc*

WORKDIR /app

# Only the runtime dependencies: [project].dependencies of pyproject.toml, not the
# train/dev extras. torch is already there and satisfies its own line.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && python -m pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY model ./model
COPY app ./app
COPY weights ./weights
# Readable by the service user, writable by nobody but root.
RUN chmod -R a+rX,go-w /app

# Service settings; all of them can be overridden with `docker run -e` or compose.
#   UVICORN_HOST / UVICORN_PORT: where the server listens (python -m app.guard.server reads them).
#   WEB_CONCURRENCY: worker processes (each loads its own copy of the models).
#   UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN: the most seconds of the drain after SIGTERM (default 20, app/guard/shutdown.py).
#   GCNN_TORCH_THREADS: torch intra-op threads per worker; unset, the service takes
#     the CPUs it may run on divided by WEB_CONCURRENCY. A CPU quota (--cpus) is not
#     visible that way, so set it (and OMP_NUM_THREADS) to the quota, as compose does.
#   GCNN_*: the other service settings (app/settings.py), e.g. GCNN_LOG_LEVEL, and the limits:
#     GCNN_MAX_HEADER_BYTES, GCNN_HEADER_TIMEOUT_S, GCNN_BODY_TIMEOUT_S, GCNN_KEEP_ALIVE_S,
#     GCNN_MAX_CONNECTIONS, GCNN_MAX_INFLIGHT_REQUESTS, GCNN_MAX_INFLIGHT_BYTES, GCNN_DECODE_*.
ENV PYTHONPATH=/app \
    UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8000 \
    WEB_CONCURRENCY=1

USER app
EXPOSE 8000

# Healthy once /readyz answers 200 (models loaded); the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('UVICORN_PORT', '8000'), timeout=4)"]

# `docker stop` sends SIGTERM: the server drains (new requests 503, accepted ones answered) and exits 0 within
# 20 s; Docker's default wait before SIGKILL is 10 s, so run with --stop-timeout 30 (compose: stop_grace_period).
STOPSIGNAL SIGTERM

# uvicorn with the service's limits for slow and hostile clients (app/guard/server.py: request-head size,
# head and body deadlines, keep-alive, connections); its access log is off, the app writes its own.
CMD ["python", "-m", "app.guard.server", "--proxy-headers"]
