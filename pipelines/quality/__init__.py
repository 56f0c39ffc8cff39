"""Data quality: Great Expectations suites (``expectations/``) run as gates before writes."""
