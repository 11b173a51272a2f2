"""Which files a wheel carries; everything else is in pyproject.toml.

Every `bench` subpackage is found automatically, so a new one cannot be left
out. The repository's plugin folders (methods/, datasets/) and cluster
profiles (slurm/) keep their top-level place in the source tree and travel in
the wheel as `bench/_builtin/<folder>`, where `bench.registry.BUILTIN_ROOT`
finds them. They are never installed as top-level packages: one called
`datasets` would shadow Hugging Face's.
"""

from setuptools import find_packages, setup

BUILTIN_FOLDERS = {"methods": ["*.py"], "datasets": ["*.py"], "slurm": ["*.yaml", "*.sh"]}

setup(
    packages=find_packages(include=["bench", "bench.*"]) + [f"bench._builtin.{name}" for name in BUILTIN_FOLDERS],
    package_dir={f"bench._builtin.{name}": name for name in BUILTIN_FOLDERS},
    package_data={f"bench._builtin.{name}": patterns for name, patterns in BUILTIN_FOLDERS.items()},
)
