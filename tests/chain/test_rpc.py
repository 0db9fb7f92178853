"""The JSON-RPC client against nodes that answer badly: every broken answer is an outage to ride out
(RpcUnavailableError naming the node), never an exception that ends an agent; batches keep each answer's error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fedchain.chain.connection import Connection
from fedchain.chain.rpc import Call, JsonRpc
from fedchain.errors import ChainError, RpcError, RpcTransportError, RpcUnavailableError
from tests.chain.test_connection import fake_node
from tests.fixtures_devnet import DevnetEnv


@pytest.mark.parametrize(("status", "raw", "match"), [
    (200, b"<html>not json</html>", "not JSON"),
    (200, b'{"jsonrpc":"2.0","id":999,"result":"0x1"}', "no response to eth_blockNumber"),
    (200, b"[]", "no response to eth_blockNumber"),
    (200, b"17", "no response to eth_blockNumber"),
    (502, b"<html>bad gateway</html>", "HTTP 502"),
    (200, b"[" * 5000 + b"]" * 5000, "not JSON|no response"),
])
def test_a_broken_answer_is_an_outage_naming_the_node(status: int, raw: bytes, match: str) -> None:
    with fake_node(lambda call: (status, raw)) as url:
        conn = Connection(url)
        with pytest.raises(RpcUnavailableError, match=match) as info:
            conn.block_number()
        assert url in str(info.value)


def test_an_error_answer_is_a_chain_error_naming_the_method() -> None:
    def error(call: dict[str, Any]) -> tuple[int, bytes]:
        return 200, json.dumps({"jsonrpc": "2.0", "id": call["id"],
                                "error": {"code": -32601, "message": "method not found"}}).encode()

    with fake_node(error) as url:
        with pytest.raises(ChainError, match="evm_mine failed on .*: method not found") as info:
            Connection(url).request("evm_mine")
        assert not isinstance(info.value, RpcUnavailableError)


def test_a_batch_keeps_each_answers_error(chain_env: DevnetEnv) -> None:
    rpc = JsonRpc(chain_env.url)
    number, missing, chain = rpc.batch([Call("eth_blockNumber"), Call("no_suchMethod"), Call("eth_chainId")])
    assert int(number, 16) >= 0 and int(chain, 16) == 31337
    assert isinstance(missing, RpcError) and missing.method == "no_suchMethod" and missing.code is not None
    assert rpc.exchanges == 1 and rpc.counts["no_suchMethod"] == 1


def test_not_an_http_url_is_refused() -> None:
    with pytest.raises(RpcTransportError, match="not an http"):
        JsonRpc("ws://127.0.0.1:8545")
    with pytest.raises(RpcUnavailableError, match="not an http"):
        Connection("file:///etc/passwd")
