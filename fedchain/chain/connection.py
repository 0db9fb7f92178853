"""A connection to one Ethereum JSON-RPC endpoint, and locally signed transactions.

Each :class:`Connection` owns its own ``Web3`` object (there is no global one). Writes
are signed locally with an eth-account ``LocalAccount`` and sent raw; the receipt is
awaited with a timeout and summarised as a :class:`fedchain.ports.TxReport` (gas used,
effective gas price), logged with the tx hash. Third-party exceptions are translated
here, at the boundary, into the :mod:`fedchain.errors` chain family.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import BlockIdentifier, RPCEndpoint
from web3.types import Wei as Web3Wei

from fedchain.chain.abi import RevertDecoder, to_bytes
from fedchain.errors import (
    ChainError,
    ChainIdMismatchError,
    ContractRevertError,
    InsufficientFundsError,
    RpcUnavailableError,
    TransactionFailedError,
)
from fedchain.ports import TxReport
from fedchain.services.base import DEVNET_UNAVAILABLE_CODE
from fedchain.types import Address, RoundId, Wei

log = logging.getLogger(__name__)

GAS_MARGIN_NUM, GAS_MARGIN_DEN = 6, 5  # gas limit = estimate * 1.2


def _insufficient_funds(message: str) -> bool:
    text = message.lower()
    return "insufficient funds" in text or "lack of funds" in text or "sender doesn't have enough funds" in text


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
        provider = Web3.HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
        )
        self.w3 = Web3(provider)
        with self.translate():
            self.chain_id: int = int(self.w3.eth.chain_id)
        if expected_chain_id is not None and expected_chain_id != self.chain_id:
            raise ChainIdMismatchError(expected_chain_id, self.chain_id)

    # --- error translation ---------------------------------------------------------

    @contextmanager
    def translate(self, decoder: RevertDecoder | None = None, function: str = "") -> Iterator[None]:
        """Map web3/requests exceptions raised inside the block to fedchain errors."""
        try:
            yield
        except ContractLogicError as err:
            raise self._revert_error(err, decoder, function) from err
        except (requests.ConnectionError, requests.Timeout, ProviderConnectionError, ConnectionError) as err:
            raise RpcUnavailableError(f"cannot reach the Ethereum node at {self.url}: {_reason(err)}") from err
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as err:
            # the node died (or its connection broke) between the answer's headers and its body
            raise RpcUnavailableError(
                f"the connection to the Ethereum node at {self.url} broke mid-answer: {_reason(err)}"
            ) from err
        except Web3RPCError as err:
            message = str(getattr(err, "message", "") or err)
            if _rpc_code(err) == DEVNET_UNAVAILABLE_CODE:
                raise RpcUnavailableError(f"the Ethereum node at {self.url} is restarting: {message}") from err
            if _chain_moved(message):
                # the block a read was resolved against vanished under it (a rewind or reorganisation):
                # the same read a moment later is answered from the chain as it is now
                raise RpcUnavailableError(
                    f"the chain at {self.url} changed under the read (rewound or reorganised): {message}"
                ) from err
            if _insufficient_funds(message):
                raise InsufficientFundsError(f"{function or 'transaction'}: {message}") from err
            revert = self._revert_from_rpc(err, decoder, function)
            if revert is not None:
                raise revert from err
            raise ChainError(f"{function or 'RPC call'} failed on {self.url}: {message}") from err

    @staticmethod
    def _revert_error(err: ContractLogicError, decoder: RevertDecoder | None, function: str) -> ChainError:
        data = err.data
        if isinstance(data, dict):
            data = data.get("data")
        if decoder is not None:
            decoded = decoder.decode(data, function=function)
            if decoded is not None:
                return decoded
        raw = to_bytes(data)
        if raw:
            return ContractRevertError("UnknownError", {"data": raw}, function=function)
        return ContractRevertError("Revert", {"message": str(err.message or err)}, function=function)

    @staticmethod
    def _revert_from_rpc(err: Web3RPCError, decoder: RevertDecoder | None, function: str) -> ChainError | None:
        response = err.rpc_response or {}
        error = response.get("error") if isinstance(response, dict) else None
        data = error.get("data") if isinstance(error, dict) else None
        if isinstance(data, dict):
            data = data.get("data")
        if data is None or decoder is None:
            return None
        return decoder.decode(data, function=function)

    # --- reads -----------------------------------------------------------------------

    def block_number(self) -> int:
        """The latest block number."""
        with self.translate():
            return int(self.w3.eth.block_number)

    def block_timestamp(self, block: BlockIdentifier = "latest") -> int:
        """The timestamp (unix seconds) of ``block`` (default: the latest)."""
        with self.translate():
            return int(self.w3.eth.get_block(block)["timestamp"])

    def balance(self, address: str) -> Wei:
        """The balance of ``address`` in wei."""
        with self.translate():
            return Wei(int(self.w3.eth.get_balance(to_checksum_address(address))))

    def code_at(self, address: str) -> bytes:
        """The runtime code at ``address`` (empty where no contract lives)."""
        with self.translate():
            return bytes(self.w3.eth.get_code(to_checksum_address(address)))

    def request(self, method: str, params: list[Any] | None = None) -> Any:
        """A raw JSON-RPC request (``evm_snapshot``, ``evm_mine``...)."""
        with self.translate(function=method):
            response = self.w3.provider.make_request(RPCEndpoint(method), params or [])
        if "error" in response:
            raise ChainError(f"{method} failed on {self.url}: {response['error']}")
        return response.get("result")

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
        with self.translate(decoder, function):
            raw = bytes(self.w3.eth.call(tx, block))  # type: ignore[arg-type]  # a plain dict, not web3's TxParams
            if raw or tx.get("to") is None:
                return raw
            to = to_checksum_address(tx["to"])
            if self.w3.eth.get_code(to, block):
                return raw
        raise RpcUnavailableError(
            f"{function or 'eth_call'}: the node at {self.url} answered empty data from {to}, which has no code in "
            f"the state of block {block!r} (a node behind the chain, or a reorganisation that lost the contract's "
            "state); the read may be tried again"
        )

    # --- writes ----------------------------------------------------------------------

    def send_transaction(
        self,
        account: LocalAccount,
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
        :class:`ContractRevertError` and nothing is sent) unless ``gas`` is given. A
        transaction that passed the estimate but reverted once mined (a commit mined just after
        the deadline, say: the estimate ran against the previous block's timestamp) is replayed
        with ``eth_call`` at the block it was mined in, from the sender and with its gas limit, so
        that the decoded custom error is raised as its typed revert
        (:class:`fedchain.reverts.FederationCommitTooLate`, ...). When the replay does not revert
        (the transaction ran out of gas, or the block's other transactions changed what it saw)
        the failure is a :class:`TransactionFailedError` that says so."""
        sender = to_checksum_address(account.address)
        tx: dict[str, Any] = {"from": sender, "value": value, "data": data, "chainId": self.chain_id}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        with self.translate(decoder, function):
            if gas is None:
                # Estimated in the pending block, the one the transaction is mined in: a contract whose cost
                # depends on the block (OpenZeppelin's vote checkpoints, one per block: updated in the same
                # block, pushed in a later one) would otherwise get too little gas. tx is a plain dict that
                # grows field by field; web3 wants its TxParams TypedDict.
                estimate = self.w3.eth.estimate_gas(tx, "pending")  # type: ignore[arg-type]
                gas = estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN
            base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
            tip = int(self.w3.eth.max_priority_fee)
            tx.update(
                gas=gas,
                nonce=self.w3.eth.get_transaction_count(sender, "pending"),
                maxPriorityFeePerGas=tip,
                maxFeePerGas=2 * base_fee + tip,
                type=2,
            )
            need = gas * tx["maxFeePerGas"] + value
            have = int(self.w3.eth.get_balance(sender))
            if have < need:
                raise InsufficientFundsError(
                    f"{function}: {sender} has {have} wei, needs up to {need} wei for gas and value"
                )
            for attempt in range(NONCE_RETRIES + 1):
                signed = account.sign_transaction(tx)
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                    break
                except Web3RPCError as err:
                    # another process signing with the same key took this nonce between our read and our send
                    if attempt == NONCE_RETRIES or "nonce too low" not in str(getattr(err, "message", "") or err):
                        raise
                    log.info("%s: nonce %d was taken by another transaction of %s; signing again", function,
                             tx["nonce"], sender)
                    tx["nonce"] = self.w3.eth.get_transaction_count(sender, "pending")
        hex_hash = "0x" + bytes(tx_hash).hex()
        try:
            with self.translate(decoder, function):
                receipt: dict[str, Any] = dict(
                    self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.tx_timeout_s, poll_latency=0.05)
                )
        except (TimeExhausted, TransactionNotFound) as err:
            raise TransactionFailedError(
                f"{function}: no receipt for {hex_hash} within {self.tx_timeout_s:.0f}s"
            ) from err
        block = int(receipt["blockNumber"])
        if int(receipt["status"]) != 1:
            replay: dict[str, Any] = {k: tx[k] for k in ("from", "to", "value", "data") if k in tx}
            revert, why = self._mined_revert(replay, gas, block, decoder, function)
            used = int(receipt["gasUsed"])
            if revert is not None:
                log.warning("%s reverted once mined: tx %s, block %d: %s", function, hex_hash, block, revert)
                raise revert
            if used >= gas:
                why = f"it ran out of gas ({why})"
            raise TransactionFailedError(
                f"{function}: transaction {hex_hash} failed in block {block} (gas used {used} of {gas}; {why})"
            )
        report = TxReport(
            function=function,
            tx_hash=hex_hash,
            gas_used=int(receipt["gasUsed"]),
            block_number=block,
            effective_gas_price=int(receipt.get("effectiveGasPrice", 0) or 0),
            round_id=round_id,
        )
        if round_id is not None:
            log.info("%s round %d: tx %s, gas %d, block %d", function, round_id, hex_hash, report.gas_used, block)
        else:
            log.info("%s: tx %s, gas %d, block %d", function, hex_hash, report.gas_used, block)
        return report, receipt

    def _mined_revert(
        self, tx: dict[str, Any], gas: int, block: int, decoder: RevertDecoder | None, function: str
    ) -> tuple[ContractRevertError | None, str]:
        """Why a transaction mined in ``block`` failed: its call replayed with ``eth_call`` at that block
        (the block's timestamp and number, the state at its end, which the failed transaction did not
        change), as (the decoded revert, "") or (None, what the replay said instead)."""
        try:
            with self.translate(decoder, function):
                # the fields of a sent transaction, kept as a plain dict; web3 wants its TxParams TypedDict
                self.w3.eth.call({**tx, "gas": gas}, block)  # type: ignore[typeddict-item]
        except ContractRevertError as err:
            return err, ""
        except RpcUnavailableError:
            raise
        except ChainError as err:  # e.g. out of gas again, or a node that keeps no state for that block
            return None, f"replaying it at block {block} failed: {err}"
        return None, f"replaying it at block {block} succeeded"

    def transfer(self, account: LocalAccount, to: str, value: Wei) -> TxReport:
        """Send ``value`` wei from ``account`` to ``to``."""
        report, _ = self.send_transaction(account, to=to, value=value, function="transfer")
        return report

    def dev_accounts(self) -> list[Address]:
        """Accounts the node itself unlocks (anvil/Hardhat dev accounts); empty elsewhere."""
        with self.translate():
            return [Address(to_checksum_address(a)) for a in self.w3.eth.accounts]

    def fund_from_dev_account(self, to: str, value: Wei) -> str:
        """Send ``value`` wei from the node's first unlocked dev account; returns the tx hash."""
        accounts = self.dev_accounts()
        if not accounts:
            raise ChainError(f"the node at {self.url} unlocks no dev account to fund from (not a devnet?)")
        with self.translate(function="fund"):
            tx_hash = self.w3.eth.send_transaction(
                {"from": accounts[0], "to": to_checksum_address(to), "value": Web3Wei(value)}
            )
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.tx_timeout_s, poll_latency=0.05)
        hex_hash = "0x" + bytes(tx_hash).hex()
        if int(receipt["status"]) != 1:
            raise TransactionFailedError(f"fund: transaction {hex_hash} failed")
        log.info("funded %s with %d wei: tx %s", to, value, hex_hash)
        return hex_hash


NONCE_RETRIES = 3
"""How often a transaction is signed again with a fresh nonce when another sender of the same key took its nonce."""

_CHAIN_MOVED = ("BlockOutOfRangeError", "header not found", "unknown block")


def _chain_moved(message: str) -> bool:
    """Whether a node's error says the block a read was resolved against is not there (any more)."""
    return any(marker.lower() in message.lower() for marker in _CHAIN_MOVED)


def _reason(err: BaseException) -> str:
    """The innermost cause of a connection failure, e.g. ``[Errno 111] Connection refused``."""
    inner: BaseException = err
    while (cause := inner.__cause__ or inner.__context__) is not None:
        inner = cause
    text = str(inner)
    if "Errno" in text:
        return text[text.index("[Errno"):].rstrip(")\"'")
    if isinstance(err, requests.Timeout):
        return "timed out"
    return text.splitlines()[0] if text else type(inner).__name__


def _rpc_code(err: Web3RPCError) -> int | None:
    """The JSON-RPC error code of a failed call, when the node gave one."""
    response = err.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else None
