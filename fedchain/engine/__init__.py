"""The round engine: the one round loop of fedchain and the transports it runs over.

:func:`~fedchain.engine.loop.run_rounds` owns the loop (open a round, collect the committed
updates, aggregate them with the task's strategy, publish the result, evaluate, report).
A :class:`~fedchain.engine.loop.Transport` carries a round: in memory
(:class:`~fedchain.engine.memory.InMemoryTransport`, participants trained in this process)
or over the ledger (:class:`~fedchain.engine.ledger.LedgerTransport`, the chain and the blob
store, participants anywhere). The aggregator agent, the simulator, the benchmarks and the tests
all drive the same loop and get the same typed :class:`~fedchain.engine.reports.RoundReport`.
"""
