"""Packaging beyond what setup.cfg can say: the top-level ``properties/`` folder (RecBole's
layout, edited in place) ships inside the package as ``recbole_lsrm/properties``, so that a
wheel and an editable install read the same property files."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["recbole_lsrm", "recbole_lsrm.*"]) + ["recbole_lsrm.properties"],
    package_dir={"recbole_lsrm.properties": "properties"},
    package_data={"recbole_lsrm.properties": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},
)
