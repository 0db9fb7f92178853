"""Orchestration of whole runs: the one experiment configuration, an in-memory run, a whole
federation on the ledger (services, accounts, participant processes, the audit), reports and plots."""
