from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="pyramid_jeff",
    version="0.2.0.dev0",
    description="Server-side, revocable login sessions for the Pyramid web framework",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["pyramid_jeff", "pyramid_jeff.*"]),
    package_data={"pyramid_jeff": ["py.typed"]},
    zip_safe=False,
    entry_points={"console_scripts": ["pjeff = pyramid_jeff.pjeff:main"]},
    # The lowest versions here are the ones `make test-floors` (.ci/floors.txt) tests.
    install_requires=["pyramid>=2.0", "msgpack>=1.0.5", "redis>=5.0"],
    extras_require={
        # Optional stores; a SQL store also needs the database's driver (psycopg, pymysql).
        "memcached": ["pymemcache>=4.0"],
        "sql": ["SQLAlchemy>=2.0"],
        "test": [
            "pytest",
            "pytest-cov",
            "webtest",
            "hypothesis",
            "pyramid_tm",
            "pyramid_retry",
            "transaction",
            "zope.sqlalchemy",
            "SQLAlchemy>=2.0",
            "pymemcache>=4.0",
            "psycopg[binary]",
            "pymysql",
            "alembic",
            "bcrypt",
            "docutils",
            "pyramid_chameleon",
            "playwright",
            "pyramid_jinja2",
            "waitress",
            "mypy",
            "ruff",
        ],
    },
    classifiers=[
        "Framework :: Pyramid",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: Session",
        "Typing :: Typed",
    ],
)
