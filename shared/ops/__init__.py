"""Operations: the composition root, admin actions, the CLI, HTTP adapters, telemetry export."""
