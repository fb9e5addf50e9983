"""pyramid_jeff's benchmarks: ``python -m benchmarks`` (see benchmarks/README.md).

Not part of the package; their dependencies are in benchmarks/requirements.txt.
"""
