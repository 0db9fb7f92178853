"""Codecs: canonical JSON and digests, the canonical tensor-blob format, and the Merkle tree of
commitment leaves. Same content, same bytes, on every machine; no torch, no web3 connection."""
