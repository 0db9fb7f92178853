"""Federated-learning engine: datasets, data schemas, partitioners, models and the
pure training/aggregation math.

Nothing in ``fedchain.fl`` talks to the chain or to blob storage. The package
initialiser imports nothing, so that ``fedchain.codec.canonical`` (used by chain code for
spec digests) never pulls in torch; import the submodules you need.
"""
