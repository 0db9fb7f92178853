"""fedchain: auditable federated learning on an Ethereum ledger with IPFS update blobs."""

__version__ = "0.1.0"
