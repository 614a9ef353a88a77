"""Package list only (everything else is in pyproject.toml): `plugins/` installs as `fasbench_plugins`."""

from setuptools import find_packages, setup

core = find_packages(include=["fasbench", "fasbench.*"])
plugins = ["fasbench_plugins"] + [f"fasbench_plugins.{name}" for name in find_packages("plugins")]
setup(packages=core + plugins)
