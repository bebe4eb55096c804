"""copybot: capital-protected Smart Sync copy trading."""

__version__ = "0.1.0"
