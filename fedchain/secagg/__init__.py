"""Secure aggregation (Bonawitz et al. CCS 2017, with the SecAgg+ neighbour graph of Bell et al. CCS 2020).

Pure, typed functions over canonical records: :mod:`.shamir` (secret sharing), :mod:`.masking`
(fixed-point ring and mask PRG), :mod:`.keys` (X25519, HKDF, AEAD), :mod:`.graph` (who shares
with whom), :mod:`.messages` (the public records) and :mod:`.protocol` (the round). No torch, no web3.
"""
