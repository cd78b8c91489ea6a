"""The built-in HTML error pages, shipped in the wheel as the `proxy.templates` package (see pyproject.toml)."""
