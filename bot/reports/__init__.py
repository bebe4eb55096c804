"""Human-facing renderings of the state: status tables (and settlement reports later)."""
