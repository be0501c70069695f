# syntax=docker/dockerfile:1
# Modelport's image (docs/deploy.md, "Docker"): docker build -t modelport .
#
# The first stage builds a wheel of every pinned dependency (requirements.txt) and of the
# project; the final stage installs only those wheels, with no compiler, no build tools and
# no source tree. The server runs as an unprivileged user on a read-only root file system:
# it writes to /tmp (a tmpfs) and to /data (a volume: the instance folder and the artifacts).

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY pyproject.toml requirements.txt README.md ./
COPY modelport ./modelport
# The database drivers and the MLflow client come in the image; the test tools do not.
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint requirements.txt \
        ".[postgres,mysql,mlflow]"

FROM python:3.11-slim
ENV PATH=/opt/modelport/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MODELPORT_ENV=production \
    MODELPORT_INSTANCE_PATH=/data \
    MODELPORT_ARTIFACTS_DIR=/data/artifacts \
    MODELPORT_BIND=0.0.0.0:8000
# A fixed uid and gid, so that volumes, securityContext.runAsUser and file permissions can
# name them. /data belongs to it: a new named volume mounted there starts as a copy, owner
# included.
RUN groupadd --system --gid 10001 modelport \
    && useradd --system --uid 10001 --gid modelport --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin modelport \
    && install --directory --owner=modelport --group=modelport --mode=0750 /data /data/artifacts
# The wheels are mounted from the first stage for this step only: no layer keeps them.
# --no-index: nothing is fetched here, every package is one the first stage built.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/modelport \
    && /opt/modelport/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        "modelport[postgres,mysql,mlflow]"
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/modelport-entrypoint
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# python's urllib: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["modelport-entrypoint", "healthcheck"]
ENTRYPOINT ["modelport-entrypoint"]
CMD ["serve"]
