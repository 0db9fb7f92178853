"""The auditor: replays the ledger's events and the blob store, trusting neither the
aggregator nor any local file, and reports typed findings."""
