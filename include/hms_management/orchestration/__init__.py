"""What runs inside Airflow's own processes around a proposal run: the operators and the trigger
(workers, triggerer), the run-state helpers (task processes), the run-note listener, the cluster
policy and the warm executor (scheduler)."""
