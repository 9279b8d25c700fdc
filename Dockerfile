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

# --- assets stage: the console's front end (DSFR, the map outlines) from npm, lockfile pinned ---
FROM node:20.19.0-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
# Only what the console serves: DSFR's CSS, JS, fonts, icons, favicon; the chart package's map.
WORKDIR /src/node_modules/@gouvfr
RUN mkdir -p /assets/@gouvfr/dsfr/dist/utility/icons /assets/@gouvfr/dsfr-chart/dist/MapChart \
    && cp -r dsfr/LICENSE.md dsfr/dist/dsfr.min.css dsfr/dist/dsfr.module.min.js dsfr/dist/fonts \
       dsfr/dist/icons dsfr/dist/favicon /assets/@gouvfr/dsfr/dist/ \
    && cp dsfr/dist/utility/icons/icons.min.css /assets/@gouvfr/dsfr/dist/utility/icons/ \
    && cp dsfr-chart/LICENSE dsfr-chart/dist/MapChart/MapChart.js /assets/@gouvfr/dsfr-chart/dist/MapChart/

# --- final stage: the interpreter, the venv, the console's assets, nothing else ---
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="vigie" \
      org.opencontainers.image.description="Real-time cross-agency alerting (ingest, correlate, notify)" \
      org.opencontainers.image.licenses="EUPL-1.2"
ENV PATH=/opt/vigie/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIGIE_DATA_DIR=/tmp/vigie \
    VIGIE_WEB_PORT=6066 \
    VIGIE_CONSOLE_ASSETS=/opt/vigie/console-assets
RUN groupadd --system --gid 10001 vigie \
    && useradd --system --uid 10001 --gid vigie --no-create-home --shell /usr/sbin/nologin vigie
COPY --from=build /opt/vigie /opt/vigie
COPY --from=assets /assets /opt/vigie/console-assets
USER 10001:10001
EXPOSE 6066
# Kubernetes probes /livez and /readyz; no Docker HEALTHCHECK (see deploy/k8s).
HEALTHCHECK NONE
ENTRYPOINT ["vigie"]
CMD ["--help"]
