# One image for every Airflow component (api-server, scheduler, dag-processor, triggerer, Celery
# workers), dbt and the sandbox: the project's own pinned requirements, CeleryExecutor included.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False
WORKDIR /opt/c360
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY . .
RUN useradd --create-home --uid 50000 c360 \
    && mkdir -p /opt/c360/.data /opt/airflow/logs \
    && chown -R c360 /opt/c360 /opt/airflow
USER c360
ENV PYTHONPATH=/opt/c360 AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/c360/dags AIRFLOW__CORE__PLUGINS_FOLDER=/opt/c360/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False DBT_PROFILES_DIR=/opt/c360/dbt_project C360_DATA_DIR=/opt/c360/.data
# The manifest Cosmos renders the dbt DAG from (parsing needs no database).
RUN dbt parse --project-dir dbt_project --quiet
