"""errorproxy: a reverse proxy that turns upstream errors into one actionable shape."""

__version__ = "0.1.0"
