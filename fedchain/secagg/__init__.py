"""Secure aggregation (Bonawitz et al. CCS 2017, with the SecAgg+ neighbour graph of Bell et al. CCS 2020).

Pure, typed functions over canonical records: :mod:`.shamir` (secret sharing over GF(2^521 - 1)),
:mod:`.masking` (fixed-point coding in Z/2^32 and the ChaCha20 mask PRG), :mod:`.keys` (X25519, HKDF-SHA256,
ChaCha20-Poly1305), :mod:`.graph` (who shares with whom), :mod:`.context` (what a round is bound to),
:mod:`.messages` (the public records, bytes in / bytes out with a digest), :mod:`.protocol` (the round) and
:mod:`.inprocess` (a whole round in one process). No torch, no web3.

What the aggregator sees: every participant's advertisement (a fresh mask public key, a hash commitment to
its self-mask seed, Shamir shares encrypted to other participants), its masked input (uniformly random in
Z/2^32 on its own), and the survivors' revealed shares: for each survivor the shares of its self-mask seed,
for each participant that dropped before committing the shares of its mask key. From these it learns the
sum of the survivors' quantised inputs and nothing else about one input, provided fewer than t of a
participant's share holders collude with it (t is a strict majority of each share set, so it cannot gather
both a seed set and a key set for one participant from honest holders, who never reveal both). What it
cannot hide: who advertised, who committed, who revealed, and the sum. Everything :func:`.protocol.unmask`
uses is public, so an auditor re-derives the sum bit for bit and names lying or double-revealing survivors.
"""
