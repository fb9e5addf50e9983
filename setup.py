from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="pyramid_jeff",
    version="0.1.0",
    description="Server-side, revocable login sessions for the Pyramid web framework",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["pyramid_jeff", "pyramid_jeff.*", "demo", "demo.*"]),
    package_data={"pyramid_jeff": ["py.typed"], "demo": ["templates/*", "static/*"]},
    include_package_data=True,
    zip_safe=False,
    install_requires=["pyramid>=2.0", "msgpack>=1.0", "redis>=5.0"],
    extras_require={
        "demo": ["pyramid_jinja2", "waitress"],
        "test": [
            "pytest",
            "webtest",
            "hypothesis",
            "pyramid_tm",
            "playwright",
            "pyramid_jinja2",
            "waitress",
            "mypy",
            "ruff",
        ],
    },
    entry_points={"paste.app_factory": ["main = demo:main"]},
    classifiers=[
        "Framework :: Pyramid",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: Session",
        "Typing :: Typed",
    ],
)
