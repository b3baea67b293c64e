"""What the api-server serves beyond Airflow's own routes: the /management app, the admission check
on Airflow's trigger endpoint, and Airflow auth for both. Only the plugin imports this room."""
