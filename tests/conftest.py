"""Core test configuration. Core tests never import anything under plugins/."""

pytest_plugins = ["pytester"]
