"""The money core: per-minute coin billing (SPEC §4) and settlement of ended calls (SPEC §5)."""
