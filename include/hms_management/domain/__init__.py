"""What the Management Layer is about, in plain Python: proposals, workflow steps, outcomes and the
HMS services. Imported by every runtime; imports nothing of Airflow and nothing of the other rooms."""
