"""The pyramid_jeff demo as its own small distribution, never part of pyramid_jeff's wheel.

Installed by `make demo` and `make test` (`pip install -e ./demo`); development.ini and
redis.ini load it with `use = egg:pyramid_jeff_demo`.
"""

from setuptools import setup

setup(
    name="pyramid_jeff_demo",
    version="0.0.0",
    description="The pyramid_jeff demo application (not published)",
    license="MIT",
    python_requires=">=3.10",
    packages=["pyramid_jeff_demo", "pyramid_jeff_demo.views"],
    package_data={"pyramid_jeff_demo": ["templates/*.jinja2", "static/*.css"]},
    zip_safe=False,
    install_requires=["pyramid_jeff[sql]", "pyramid_jinja2", "waitress"],
    entry_points={"paste.app_factory": ["main = pyramid_jeff_demo:main"]},
    classifiers=["Private :: Do Not Upload"],
)
