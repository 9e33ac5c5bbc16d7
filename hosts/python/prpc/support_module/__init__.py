"""The original PRPC's support modules, kept so its import paths work unchanged."""
