"""The run harness: configs and the algorithm registry, data, models, sessions, telemetry,
checkpoints, the background training process and the command line."""
