"""Local-only tooling: HTTPS stand-ins for Azure services and emulator launchers (never deployed)."""
