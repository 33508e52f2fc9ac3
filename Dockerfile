# One image for Airflow, dbt and the sandbox: the project's own pinned requirements.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
WORKDIR /opt/c360
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY . .
RUN useradd --create-home --uid 50000 c360 && chown -R c360 /opt/c360
USER c360
ENV PYTHONPATH=/opt/c360 AIRFLOW_HOME=/opt/c360/.data/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/c360/dags AIRFLOW__CORE__PLUGINS_FOLDER=/opt/c360/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False DBT_PROFILES_DIR=/opt/c360/dbt_project
