"""HMS Management Layer: proposal orchestration on Apache Airflow."""
