"""Every test in this tree runs with the course plugin: see course/pytest_plugin.py."""

pytest_plugins = ["course.pytest_plugin", "pytester"]
