"""Packages: everything under reid_export/, plus the top-level train/ folder as reid_export.recipes.

The rest of the configuration is in pyproject.toml; setuptools' declarative `packages.find` cannot add
a package that lives outside the package tree, so this one line of code does it.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["reid_export", "reid_export.*"]) + ["reid_export.recipes"])
