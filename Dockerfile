# The HDI code location image: used by the webserver, the daemon and the code-location gRPC server.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home HDI_HOME=/opt/hdi
WORKDIR /opt/hdi-src
COPY pyproject.toml README.md ./
COPY hdi_assets ./hdi_assets
COPY hdi_resources ./hdi_resources
COPY configs ./configs
RUN pip install --no-cache-dir . && mkdir -p $DAGSTER_HOME $HDI_HOME
COPY deploy/dagster.postgres.yaml $DAGSTER_HOME/dagster.yaml
COPY workspace.yaml $DAGSTER_HOME/workspace.yaml
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "hdi_assets.definitions"]
