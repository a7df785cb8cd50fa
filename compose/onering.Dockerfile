# syntax=docker/dockerfile:1
# OneRing's own image for compose: Dagster's webserver and daemon, the Airflow components
# (the exported DAGs import airflow_bridge, and their in_process tasks materialize through
# onering_assets in the task), MLflow, the BentoML service and the Streamlit app.
# Built FROM the Airflow release the lock pins (apache-airflow 3.3.2, Python 3.11 as
# requires-python says); the locked environment goes into /opt/onering/.venv with uv, so the
# image runs exactly what uv.lock resolves, not the base image's own packages.
# Build context: the repository root (compose/docker-compose.yml sets it); what is sent is
# trimmed by onering.Dockerfile.dockerignore next to this file.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
# The uv that wrote uv.lock (uv 0.13.9).
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${AIRFLOW_IMAGE}
USER root
# A JRE for Spark's driver (Bronze through Spark, training on compose's master).
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /opt/onering /var/lib/onering \
    && chown airflow:0 /opt/onering /var/lib/onering
COPY --from=uv /uv /uvx /usr/local/bin/
USER airflow
WORKDIR /opt/onering
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/onering/.venv
# Dependencies first (cached while only the code changes), then the project, editable so
# that onering_assets finds platform/ beside it (PROJECT_ROOT = /opt/onering).
COPY --chown=airflow:0 pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY --chown=airflow:0 onering_assets ./onering_assets
COPY --chown=airflow:0 airflow_bridge ./airflow_bridge
COPY --chown=airflow:0 platform ./platform
RUN uv sync --frozen --no-dev
ENV PATH=/opt/onering/.venv/bin:${PATH} \
    ONERING_PROFILE=compose \
    ONERING_STATE_DIR=/var/lib/onering \
    DAGSTER_HOME=/var/lib/onering/dagster
