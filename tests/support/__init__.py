"""Builders and fakes shared by the test suites (importable as ``support``)."""
