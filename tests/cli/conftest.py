from tests.protocol.harness import fed, task_files  # noqa: F401 - fixtures
