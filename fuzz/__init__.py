"""What tries to break the implementations, and what reports: strategies, oracle, harness, CLI."""

__version__ = "0.1.0"
