"""The backlog sweep (DAG `backlog_sweep`): pure decisions (`plan`), the services it talks to
(`adapters`), its two parts over them (`runner`) and the task bodies the DAG calls (`tasks`)."""
