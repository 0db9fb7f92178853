"""The Ethereum side of fedchain: devnet management, accounts, the ``Federation`` contract
and the :class:`fedchain.ports.Ledger` implementation on top of it. Imports no torch.

Import from the submodules (``fedchain.chain.connection``, ``.federation``, ``.ledger``,
``.devnet``, ``.accounts``) so that importing this package stays cheap.
"""
