"""Helpers the tests share: plain functions, classes and constants, imported by name.

conftest.py files hold only fixtures, hooks and options; everything else a test reuses lives
here, in a module named after what it holds (tests/test_test_layout.py keeps it so).
"""
