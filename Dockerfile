# syntax=docker/dockerfile:1
# One image for every consumer and job: `plane-workers consume NAME`, `plane-workers job NAME`.
#
#   docker build -t plane-workers .                         # core only, no torch
#   docker build --build-arg VARIANT=gpu -t plane-workers:gpu .   # + embeddings, CUDA torch
#
# The gpu variant also runs on CPU nodes (torch falls back to CPU), so it is the image for the
# embedding consumer wherever it runs.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS builder
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Sources only (.dockerignore is an allowlist): no tests, no local state, no .env files.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY cronjobs ./cronjobs
RUN pip wheel --no-deps --wheel-dir /wheels .
# torch first, pinned, so sentence-transformers does not pick its own. PyPI's Linux torch wheel is
# the CUDA build; the NVIDIA device plugin provides the driver at run time.
RUN set -eu; \
    wheel="$(ls /wheels/plane_workers-*.whl)"; \
    case "$VARIANT" in \
      cpu) pip install "$wheel" ;; \
      gpu) pip install "torch==${TORCH_VERSION}" && pip install "${wheel}[embeddings]" ;; \
      *) echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; \
    esac; \
    plane-workers --help >/dev/null

FROM python:${PYTHON_VERSION}-slim AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="plane-workers" \
      org.opencontainers.image.description="Plane's background tasks as Kafka consumers and CronJobs" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      io.plane-workers.variant="${VARIANT}"
# A fixed numeric user, so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 plane-workers \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin plane-workers
# Same base image and path as the builder, so the venv's interpreter links stay valid.
COPY --from=builder /opt/venv /opt/venv
# HOME=/tmp: the root filesystem is read-only in the cluster and /tmp is the writable emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["plane-workers"]
CMD ["--help"]
