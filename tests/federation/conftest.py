from tests.federation.harness import fed, task_files  # noqa: F401 - fixtures
