"""A deployment's one-shot set-up, shipped in the image: the Airflow users, the connections to the HMS
services and to Airflow's own REST API, and the pools. docker-compose's `airflow-init` runs it
(`python -m hms_deploy container-init`); the local stack (`hms_stack`, dev only) writes the same
users and connections through it."""
