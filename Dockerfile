# The HMS Management Layer's image: Airflow's official image, the project's pinned packages and its
# code. One image for every service of docker-compose.yaml, and for Airflow's Helm chart.
# The python3.11 variant: constraints.txt is resolved on Python 3.11, like the .venv of `make install`.
FROM apache/airflow:3.3.2-python3.11

# The part of requirements.txt above its "this machine only" line (no test tools, no embedded
# database), at the exact versions of constraints.txt. apache-airflow is pinned there to this
# image's version, as Airflow's docs ask of every extended image.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/hms/
RUN sed '/^# Below: this machine only/,$d' /opt/hms/requirements.txt > /tmp/requirements-image.txt \
 && pip install --no-cache-dir -r /tmp/requirements-image.txt -c /opt/hms/constraints.txt \
 && rm /tmp/requirements-image.txt

# The project, installed rather than only put on PYTHONPATH: every process imports include/'s
# packages, and the scheduler finds the cluster policy through the package's entry point. Only the
# runtime packages: the local stack and the benchmark (hms_stack, hms_bench) are dev tools.
COPY --chown=airflow:0 pyproject.toml airflow.cfg /opt/hms/
COPY --chown=airflow:0 include/hms_management /opt/hms/include/hms_management
COPY --chown=airflow:0 include/hms_backend /opt/hms/include/hms_backend
COPY --chown=airflow:0 include/hms_deploy /opt/hms/include/hms_deploy
COPY --chown=airflow:0 dags /opt/hms/dags
COPY --chown=airflow:0 plugins /opt/hms/plugins
COPY --chown=airflow:0 config /opt/hms/config
RUN pip install --no-cache-dir --no-deps /opt/hms \
 && mkdir -p /opt/airflow/state /opt/airflow/hms /opt/airflow/users

# airflow.cfg reads HMS_ROOT (the DAGs, plugins and pools file) and HMS_STATE (logs). The users'
# folder (the api-server's passwords file) and the HMS backend's data are volumes in
# docker-compose.yaml; created here so that the volumes start owned by the airflow user.
ENV HMS_ROOT=/opt/hms \
    HMS_STATE=/opt/airflow/state \
    AIRFLOW_CONFIG=/opt/hms/airflow.cfg
