"""The federation loop: task documents, participant and aggregator agents, evidence,
and the orchestration of a whole run. Roles talk only through a :class:`fedchain.ports.Ledger`
and a blob store; never to each other."""
