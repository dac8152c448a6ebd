"""Build hook (the rest of the configuration is in pyproject.toml).

``gensynth.experiments`` maps to ``experiments/`` to ship its YAML configs, but
setuptools copies every ``*.py`` of a package directory as a module, and
``exclude-package-data`` filters data files only: without this hook the
benchmark and data scripts beside the configs would install as importable
``gensynth.experiments.*`` modules. (An editable install maps the folder
itself, so there they stay importable.)
"""
from setuptools import setup
from setuptools.command.build_py import build_py

DATA_ONLY = {"gensynth.experiments"}


class BuildPy(build_py):
    """``build_py`` that installs only the ``__init__`` module of the data-only packages."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if m[1] == "__init__"] if package in DATA_ONLY else modules


setup(cmdclass={"build_py": BuildPy})
