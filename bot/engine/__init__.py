"""The daemon's moving parts: lead source, follower mirrors, reconciliation, composition."""
