"""The ``fedchain`` command line."""
