"""Store adapters: one per store, each mapping its driver's errors into ``errors``."""
