# The HDI image: the code location (gRPC), the Dagster webserver and the daemon all run from it.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    HDI_HOME=/opt/hdi \
    HDI_CONFIG_DIR=/opt/hdi-src/configs
WORKDIR /opt/hdi-src
COPY pyproject.toml README.md dagster.yaml ./
COPY hdi_assets ./hdi_assets
COPY hdi_resources ./hdi_resources
COPY configs ./configs
# Editable: the package finds the repo's dagster.yaml and configs/ beside it, as in a checkout.
RUN pip install --no-cache-dir -e . && mkdir -p "$DAGSTER_HOME" "$HDI_HOME"
# Instance: PostgreSQL storage from HDI_DAGSTER_PG_URL; webserver and daemon reach the code location by gRPC.
COPY deploy/dagster.postgres.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.docker.yaml /opt/dagster/home/workspace.yaml
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "hdi_assets.definitions", \
     "--location-name", "hdi"]
