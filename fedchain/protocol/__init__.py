"""The protocol of a federation: the task document, the update and global-model blobs, the
screening rules, the evidence document, local training from the task, and the participant agent.
Roles talk only through a :class:`fedchain.ports.Ledger` and a :class:`fedchain.ports.BlobStore`;
never to each other, and never to an adapter directly."""
