"""The Ethereum side of fedchain: accounts, the compiled ``Federation`` contract (its artifacts
ship as package data in ``artifacts/``) and the :class:`fedchain.ports.Ledger` implementation on
top of it. Imports no torch.

Import from the submodules (``fedchain.chain.connection``, ``.federation``, ``.ledger``,
``.accounts``) so that importing this package stays cheap. The devnet process itself is managed
by :mod:`fedchain.services.devnet`.
"""
