"""The demo's views, one module per concept. Each view is a few lines: pyramid_jeff does
the work. ``pyramid_jeff_demo.main`` scans this package."""
