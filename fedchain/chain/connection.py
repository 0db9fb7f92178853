"""A connection to one Ethereum JSON-RPC endpoint, and locally signed transactions.

Each :class:`Connection` speaks JSON-RPC through its own :class:`fedchain.chain.rpc.JsonRpc`
(one kept-alive HTTP connection; no middleware: the chain id is read once, here). Writes
are signed locally (a :class:`fedchain.chain.signer.LocalSigner`, or an eth-account ``LocalAccount``)
and sent raw, their gas, fees, nonce and balance read in one batched round trip; the receipt is awaited with a timeout
and summarised as a :class:`fedchain.ports.TxReport` (gas used, effective gas price),
logged with the tx hash. Transport failures and error answers are translated here, at
the boundary, into the :mod:`fedchain.errors` chain family.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fedchain.chain.abi import RevertDecoder, to_bytes
from fedchain.chain.reads import DEFAULT_TTL_S, PinnedReads
from fedchain.chain.rpc import Call, JsonRpc
from fedchain.chain.signer import Signer, raw_signed_transaction
from fedchain.codec.abi import to_checksum_address
from fedchain.errors import (
    ChainError,
    ChainIdMismatchError,
    ContractRevertError,
    InsufficientFundsError,
    RpcError,
    RpcTransportError,
    RpcUnavailableError,
    TransactionFailedError,
)
from fedchain.ports import TxReport
from fedchain.services.base import DEVNET_UNAVAILABLE_CODE
from fedchain.types import Address, RoundId, Wei

log = logging.getLogger(__name__)

GAS_MARGIN_NUM, GAS_MARGIN_DEN = 6, 5  # gas limit = estimate * 1.2

BlockIdentifier = int | str
"""A block number, or a tag: ``"latest"``, ``"pending"``, ``"earliest"``, ``"safe"``, ``"finalized"``."""

RECEIPT_POLL_S = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)
"""Pauses before successive receipt reads of a sent transaction (then every 0.05 s): an automining devnet has
mined it when the send returns, so the first read finds it."""


def _insufficient_funds(message: str) -> bool:
    text = message.lower()
    return "insufficient funds" in text or "lack of funds" in text or "sender doesn't have enough funds" in text


def _quantity(value: int) -> str:
    return hex(int(value))


def _block_param(block: BlockIdentifier) -> str:
    return _quantity(block) if isinstance(block, int) else str(block)


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value or 0)


def _rpc_tx(tx: Mapping[str, Any]) -> dict[str, Any]:
    """A transaction (or call) dict as JSON-RPC takes it: quantities and data as 0x hex."""
    out: dict[str, Any] = {}
    for key, value in tx.items():
        if value is None or key in ("chainId", "type"):
            continue
        if key == "data":
            out["data"] = "0x" + to_bytes(value).hex()
        elif key in ("from", "to"):
            out[key] = str(value)
        else:
            out[key] = _quantity(value)
    return out


@dataclass(frozen=True)
class Block:
    """What :meth:`Connection.block` reads of a block: number, timestamp, base fee and transaction hashes."""

    number: int
    hash: str
    timestamp: int
    base_fee: int
    transactions: tuple[str, ...]


class Connection:
    """One JSON-RPC endpoint. Raises :class:`RpcUnavailableError` (naming the URL) when the
    node does not answer, :class:`ChainIdMismatchError` when ``expected_chain_id`` is given
    and differs."""

    def __init__(
        self,
        rpc_url: str,
        *,
        expected_chain_id: int | None = None,
        timeout_s: float = 30.0,
        tx_timeout_s: float = 120.0,
    ) -> None:
        self.url = rpc_url
        self.tx_timeout_s = tx_timeout_s
        self.reads: PinnedReads | None = None  # pin_reads(): reads of the latest state pinned to one block, shared
        with self.translate():
            self.rpc = JsonRpc(rpc_url, timeout_s=timeout_s)
            self.chain_id: int = _int(self.rpc.request("eth_chainId"))
        if expected_chain_id is not None and expected_chain_id != self.chain_id:
            raise ChainIdMismatchError(expected_chain_id, self.chain_id)

    # --- error translation ---------------------------------------------------------

    @contextmanager
    def translate(self, decoder: RevertDecoder | None = None, function: str = "") -> Iterator[None]:
        """Map transport failures and error answers raised inside the block to fedchain errors."""
        try:
            yield
        except RpcTransportError as err:
            if err.broken:
                # the node died (or its connection broke) between the answer's headers and its body
                raise RpcUnavailableError(
                    f"the connection to the Ethereum node at {self.url} broke mid-answer: {err.reason}"
                ) from err
            raise RpcUnavailableError(f"cannot reach the Ethereum node at {self.url}: {err.reason}") from err
        except RpcError as err:
            raise self._error(err, decoder, function) from err

    def _error(self, err: RpcError, decoder: RevertDecoder | None, function: str) -> ChainError:
        message = err.message
        if err.code == DEVNET_UNAVAILABLE_CODE:
            return RpcUnavailableError(f"the Ethereum node at {self.url} is restarting: {message}")
        data = err.data.get("data") if isinstance(err.data, dict) else err.data
        if _reverted(err):
            decoded = decoder.decode(data, function=function) if decoder is not None else None
            if decoded is not None:
                return decoded
            raw = to_bytes(data)
            if raw:
                return ContractRevertError("UnknownError", {"data": raw}, function=function)
            return ContractRevertError("Revert", {"message": message}, function=function)
        if _chain_moved(message):
            # the block a read was resolved against vanished under it (a rewind or reorganisation):
            # the same read a moment later is answered from the chain as it is now
            return RpcUnavailableError(
                f"the chain at {self.url} changed under the read (rewound or reorganised): {message}"
            )
        if _insufficient_funds(message):
            return InsufficientFundsError(f"{function or 'transaction'}: {message}")
        if data is not None and decoder is not None:
            decoded = decoder.decode(data, function=function)
            if decoded is not None:
                return decoded
        return ChainError(f"{function or err.method or 'RPC call'} failed on {self.url}: {message}")

    # --- reads -----------------------------------------------------------------------

    def pin_reads(self, ttl_s: float = DEFAULT_TTL_S) -> PinnedReads:
        """From now on answer this connection's reads of the latest state (``eth_call``, the
        latest block) as of one pinned block, each identical ``eth_call`` once per block for all
        threads (:mod:`fedchain.chain.reads`): for the agents of one host sharing a connection."""
        if self.reads is None:
            self.reads = PinnedReads(lambda: self.rpc.request("eth_getBlockByNumber", ["latest", False]), ttl_s=ttl_s)
        return self.reads

    def saw_block(self, number: int) -> None:
        """Block ``number`` exists: pinned reads are not answered from an older block from now on."""
        if self.reads is not None:
            self.reads.saw_block(number)

    def block_number(self) -> int:
        """The latest block number."""
        with self.translate():
            number = _int(self.rpc.request("eth_blockNumber"))
        self.saw_block(number)
        return number

    def latest_header(self) -> Any:
        """The node's raw header of the latest block (``eth_getBlockByNumber``; the pinned head
        with :meth:`pin_reads`)."""
        with self.translate():
            if self.reads is not None:
                return self.reads.head().raw
            return self.rpc.request("eth_getBlockByNumber", ["latest", False])

    def block(self, block: BlockIdentifier = "latest") -> Block:
        """The header fields and transaction hashes of ``block`` (default: the latest)."""
        if block == "latest":
            raw = self.latest_header()
        else:
            with self.translate():
                raw = self.rpc.request("eth_getBlockByNumber", [_block_param(block), False])
        if not isinstance(raw, dict):
            raise RpcUnavailableError(f"the node at {self.url} has no block {block!r} (the chain moved?)")
        return Block(
            number=_int(raw.get("number")),
            hash=str(raw.get("hash")),
            timestamp=_int(raw.get("timestamp")),
            base_fee=_int(raw.get("baseFeePerGas")),
            transactions=tuple(t if isinstance(t, str) else str(t.get("hash")) for t in raw.get("transactions", [])),
        )

    def block_timestamp(self, block: BlockIdentifier = "latest") -> int:
        """The timestamp (unix seconds) of ``block`` (default: the latest)."""
        return self.block(block).timestamp

    def balance(self, address: str) -> Wei:
        """The balance of ``address`` in wei."""
        with self.translate():
            return Wei(_int(self.rpc.request("eth_getBalance", [address, "latest"])))

    def code_at(self, address: str, block: BlockIdentifier = "latest") -> bytes:
        """The runtime code at ``address`` (empty where no contract lives)."""
        with self.translate():
            return to_bytes(self.rpc.request("eth_getCode", [address, _block_param(block)]))

    def transaction_count(self, address: str, block: BlockIdentifier = "latest") -> int:
        """The nonce of ``address`` at ``block`` (``"pending"``: counting transactions not mined yet)."""
        with self.translate():
            return _int(self.rpc.request("eth_getTransactionCount", [address, _block_param(block)]))

    def logs(self, params: Mapping[str, Any], *, function: str = "eth_getLogs") -> list[dict[str, Any]]:
        """Raw logs matching ``params`` (``address``, ``fromBlock``/``toBlock`` as numbers or tags, ``topics``),
        as the node answers them (quantities and data as 0x hex)."""
        query = dict(params)
        for key in ("fromBlock", "toBlock"):
            if key in query:
                query[key] = _block_param(query[key])
        with self.translate(function=function):
            answer = self.rpc.request("eth_getLogs", [query])
        if not isinstance(answer, list) or not all(isinstance(entry, dict) for entry in answer):
            raise RpcUnavailableError(f"{function}: the node at {self.url} answered no list of logs")
        return answer

    def request(self, method: str, params: list[Any] | None = None) -> Any:
        """A raw JSON-RPC request (``evm_snapshot``, ``evm_mine``...)."""
        with self.translate(function=method):
            answer = self.rpc.request(method, params or [])
        if self.reads is not None and method.startswith(_DEV_PREFIXES):
            self.reads.forget()  # the chain may have been rewound or changed under the pinned head
        return answer

    def call(
        self,
        tx: dict[str, Any],
        *,
        decoder: RevertDecoder | None = None,
        function: str = "",
        block: BlockIdentifier = "latest",
    ) -> bytes:
        """``eth_call`` at ``block`` (default: the latest; ``"pending"``: in the block a transaction sent now is
        mined in); a revert becomes a decoded :class:`ContractRevertError`.

        An empty answer from an address without code in that block's state is an :class:`RpcUnavailableError`,
        not empty data to decode: the node read a state without the contract (a node behind the chain, a
        reorganisation or rewind that dropped the deployment, or a node that lost the state rebuilding it:
        anvil 1.7's ``anvil_reorg`` onto a block whose state it had moved to its disk cache keeps every
        account's storage but no contract's code). An agent rides that out as an outage. A function without
        return values answers empty from a contract that has code, and that answer is returned."""
        tag = _block_param(block)
        with self.translate(decoder, function):
            if block == "latest" and self.reads is not None:
                params = _rpc_tx(tx)
                answer, head = self.reads.read("eth_call", params,
                                               lambda head: self.rpc.request("eth_call", [params, hex(head.number)]))
                raw, block = to_bytes(answer), head.number
            else:
                raw = to_bytes(self.rpc.request("eth_call", [_rpc_tx(tx), tag]))
            if raw or tx.get("to") is None:
                return raw
            to = str(tx["to"])
            if self.code_at(to, block):
                return raw
        raise RpcUnavailableError(
            f"{function or 'eth_call'}: the node at {self.url} answered empty data from {to}, which has no code in "
            f"the state of block {block!r} (a node behind the chain, or a reorganisation that lost the contract's "
            "state); the read may be tried again"
        )

    # --- writes ----------------------------------------------------------------------

    def send_transaction(
        self,
        account: Signer,
        *,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        function: str = "transfer",
        decoder: RevertDecoder | None = None,
        round_id: RoundId | None = None,
    ) -> tuple[TxReport, dict[str, Any]]:
        """Sign locally, send raw, wait for the receipt; return the report and the receipt.

        The gas limit is estimated (a revert at that point raises the decoded
        :class:`ContractRevertError` and nothing is sent) unless ``gas`` is given; the estimate,
        the latest base fee, the priority fee, the nonce and the balance are read in one batch.
        A transaction that passed the estimate but reverted once mined (a commit mined just after
        the deadline, say: the estimate ran against the previous block's timestamp) is replayed
        with ``eth_call`` at the block it was mined in, from the sender and with its gas limit, so
        that the decoded custom error is raised as its typed revert
        (:class:`fedchain.reverts.FederationCommitTooLate`, ...). When the replay does not revert
        (the transaction ran out of gas, or the block's other transactions changed what it saw)
        the failure is a :class:`TransactionFailedError` that says so."""
        sender = str(account.address)
        tx: dict[str, Any] = {"from": sender, "value": value, "data": data, "chainId": self.chain_id}
        if to is not None:
            tx["to"] = to_checksum_address(to)  # a signer takes only checksummed or lowercase addresses
        with self.translate(decoder, function):
            # Estimated in the pending block, the one the transaction is mined in: a contract whose cost
            # depends on the block (OpenZeppelin's vote checkpoints, one per block: updated in the same
            # block, pushed in a later one) would otherwise get too little gas.
            calls = [Call("eth_getBlockByNumber", ["latest", False]), Call("eth_maxPriorityFeePerGas"),
                     Call("eth_getTransactionCount", [sender, "pending"]), Call("eth_getBalance", [sender, "latest"])]
            if gas is None:
                calls.append(Call("eth_estimateGas", [_rpc_tx(tx), "pending"]))
            answers = self.rpc.batch(calls)
            for answer in reversed(answers):  # an estimate's revert first: it says why nothing is sent
                if isinstance(answer, RpcError):
                    raise answer
            latest, tip_hex, nonce_hex, balance_hex = answers[:4]
            if gas is None:
                gas = _int(answers[4]) * GAS_MARGIN_NUM // GAS_MARGIN_DEN
            base_fee = _int(latest.get("baseFeePerGas")) if isinstance(latest, dict) else 0
            tip = _int(tip_hex)
            tx.update(gas=gas, nonce=_int(nonce_hex), maxPriorityFeePerGas=tip, maxFeePerGas=2 * base_fee + tip,
                      type=2)
            need = gas * tx["maxFeePerGas"] + value
            have = _int(balance_hex)
            if have < need:
                raise InsufficientFundsError(
                    f"{function}: {sender} has {have} wei, needs up to {need} wei for gas and value"
                )
            for attempt in range(NONCE_RETRIES + 1):
                raw = raw_signed_transaction(account, tx)
                try:
                    tx_hash = str(self.rpc.request("eth_sendRawTransaction", ["0x" + raw.hex()]))
                    break
                except RpcError as err:
                    # another process signing with the same key took this nonce between our read and our send
                    if attempt == NONCE_RETRIES or "nonce too low" not in err.message.lower():
                        raise
                    log.info("%s: nonce %d was taken by another transaction of %s; signing again", function,
                             tx["nonce"], sender)
                    tx["nonce"] = self.transaction_count(sender, "pending")
        receipt = self.wait_for_receipt(tx_hash, function=function, decoder=decoder)
        block = _int(receipt["blockNumber"])
        if _int(receipt["status"]) != 1:
            replay: dict[str, Any] = {k: tx[k] for k in ("from", "to", "value", "data") if k in tx}
            revert, why = self._mined_revert(replay, gas, block, decoder, function)
            used = _int(receipt["gasUsed"])
            if revert is not None:
                log.warning("%s reverted once mined: tx %s, block %d: %s", function, tx_hash, block, revert)
                raise revert
            if used >= gas:
                why = f"it ran out of gas ({why})"
            raise TransactionFailedError(
                f"{function}: transaction {tx_hash} failed in block {block} (gas used {used} of {gas}; {why})"
            )
        report = TxReport(
            function=function,
            tx_hash=tx_hash,
            gas_used=_int(receipt["gasUsed"]),
            block_number=block,
            effective_gas_price=_int(receipt.get("effectiveGasPrice")),
            round_id=round_id,
        )
        if round_id is not None:
            log.info("%s round %d: tx %s, gas %d, block %d", function, round_id, tx_hash, report.gas_used, block)
        else:
            log.info("%s: tx %s, gas %d, block %d", function, tx_hash, report.gas_used, block)
        return report, receipt

    def wait_for_receipt(
        self, tx_hash: str, *, function: str = "transaction", decoder: RevertDecoder | None = None
    ) -> dict[str, Any]:
        """The receipt of ``tx_hash`` once it is mined (its fields as the node answers them); a
        :class:`TransactionFailedError` when none comes within the connection's ``tx_timeout_s``."""
        deadline = time.monotonic() + self.tx_timeout_s
        attempt = 0
        while True:
            with self.translate(decoder, function):
                receipt = self.rpc.request("eth_getTransactionReceipt", [tx_hash])
            if isinstance(receipt, dict) and receipt.get("blockNumber") is not None:
                self.saw_block(_int(receipt["blockNumber"]))
                return receipt
            pause = RECEIPT_POLL_S[min(attempt, len(RECEIPT_POLL_S) - 1)]
            attempt += 1
            if time.monotonic() + pause > deadline:
                raise TransactionFailedError(f"{function}: no receipt for {tx_hash} within {self.tx_timeout_s:.0f}s")
            time.sleep(pause)

    def _mined_revert(
        self, tx: dict[str, Any], gas: int, block: int, decoder: RevertDecoder | None, function: str
    ) -> tuple[ContractRevertError | None, str]:
        """Why a transaction mined in ``block`` failed: its call replayed with ``eth_call`` at that block
        (the block's timestamp and number, the state at its end, which the failed transaction did not
        change), as (the decoded revert, "") or (None, what the replay said instead)."""
        try:
            with self.translate(decoder, function):
                self.rpc.request("eth_call", [_rpc_tx({**tx, "gas": gas}), _block_param(block)])
        except ContractRevertError as err:
            return err, ""
        except RpcUnavailableError:
            raise
        except ChainError as err:  # e.g. out of gas again, or a node that keeps no state for that block
            return None, f"replaying it at block {block} failed: {err}"
        return None, f"replaying it at block {block} succeeded"

    def transfer(self, account: Signer, to: str, value: Wei) -> TxReport:
        """Send ``value`` wei from ``account`` to ``to``."""
        report, _ = self.send_transaction(account, to=to, value=value, function="transfer")
        return report

    def dev_accounts(self) -> list[Address]:
        """Accounts the node itself unlocks (anvil/Hardhat dev accounts); empty elsewhere."""
        with self.translate():
            accounts = self.rpc.request("eth_accounts")
        return [Address(to_checksum_address(a)) for a in accounts or []]

    def fund_from_dev_account(self, to: str, value: Wei) -> str:
        """Send ``value`` wei from the node's first unlocked dev account; returns the tx hash."""
        accounts = self.dev_accounts()
        if not accounts:
            raise ChainError(f"the node at {self.url} unlocks no dev account to fund from (not a devnet?)")
        with self.translate(function="fund"):
            tx_hash = str(self.rpc.request("eth_sendTransaction", [{"from": accounts[0], "to": to,
                                                                   "value": _quantity(value)}]))
        receipt = self.wait_for_receipt(tx_hash, function="fund")
        if _int(receipt["status"]) != 1:
            raise TransactionFailedError(f"fund: transaction {tx_hash} failed")
        log.info("funded %s with %d wei: tx %s", to, value, tx_hash)
        return tx_hash

    def close(self) -> None:
        """Close the HTTP connection to the node (a later request opens a new one)."""
        self.rpc.close()


NONCE_RETRIES = 3
"""How often a transaction is signed again with a fresh nonce when another sender of the same key took its nonce."""
_DEV_PREFIXES = ("evm_", "anvil_", "hardhat_")  # development calls that may rewind or rewrite the chain

_CHAIN_MOVED = ("BlockOutOfRangeError", "header not found", "unknown block")


def _chain_moved(message: str) -> bool:
    """Whether a node's error says the block a read was resolved against is not there (any more)."""
    return any(marker.lower() in message.lower() for marker in _CHAIN_MOVED)


def _reverted(err: RpcError) -> bool:
    """Whether an error answer says the EVM reverted: code 3, "execution reverted" (geth, anvil) or Hardhat's
    "VM Exception while processing transaction: reverted ..."."""
    text = err.message.lower()
    return (err.code == 3 or "execution reverted" in text or text.strip() == "revert"
            or ("vm exception" in text and "revert" in text))

