# One image for the three services; each Deployment picks its command:
#   vigie run ingest | vigie run correlate | vigie run notify
# Build: docker build -t vigie .   (the release pipeline pins the pushed digest)

# --- build stage: resolve and install Vigie and its dependencies into a venv ---
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/vigie
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY vigie ./vigie
# Binary wheels only: no compiler is needed here, and none reaches the final stage.
RUN /opt/vigie/bin/pip install --only-binary=:all: --no-binary=vigie . \
    && /opt/vigie/bin/python -m compileall -q /opt/vigie/lib

# --- final stage: the interpreter, the venv, nothing else ---
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="vigie" \
      org.opencontainers.image.description="Real-time cross-agency alerting (ingest, correlate, notify)" \
      org.opencontainers.image.licenses="EUPL-1.2"
ENV PATH=/opt/vigie/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIGIE_DATA_DIR=/tmp/vigie \
    VIGIE_WEB_PORT=6066
RUN groupadd --system --gid 10001 vigie \
    && useradd --system --uid 10001 --gid vigie --no-create-home --shell /usr/sbin/nologin vigie
COPY --from=build /opt/vigie /opt/vigie
USER 10001:10001
EXPOSE 6066
# Kubernetes probes /livez and /readyz; no Docker HEALTHCHECK (see deploy/k8s).
HEALTHCHECK NONE
ENTRYPOINT ["vigie"]
CMD ["--help"]
