from __future__ import annotations

from typing import Self

import pytest

from worker.errors import AuthError, UnknownExchange
from worker.exchange.ccxt_adapter import CCXTAdapter
from worker.exchange.factory import ExchangeFactory
from worker.exchange.paper import PaperExchange
from worker.settings import load_settings


class OfflineAdapter(CCXTAdapter):
    entered = 0

    async def __aenter__(self) -> Self:  # no load_markets: no network in unit tests
        type(self).entered += 1
        return self


async def test_register_an_adapter_class_and_cache_clients(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("OW_CRED_DESK1_MYEX_API_KEY", "key-123456")
    monkeypatch.setenv("OW_CRED_DESK1_MYEX_SECRET", "secret-123456")
    factory = ExchangeFactory(load_settings(
        {"OW_EXCHANGES": '{"myex": {"driver": "custom", "ccxt_id": "kraken", "live": true}}'}))
    factory.register("custom", OfflineAdapter)
    client = await factory.get("desk1", "myex")
    assert isinstance(client, OfflineAdapter) and client.ccxt_id == "kraken"
    assert await factory.get("desk1", "myex") is client and OfflineAdapter.entered == 1
    assert "secret-123456" not in repr(client)
    assert isinstance(await factory.get("desk1", "paper"), PaperExchange)
    with pytest.raises(AuthError):  # no credentials for this account
        await factory.get("desk2", "myex")
    with pytest.raises(UnknownExchange):
        await factory.get("desk1", "nowhere")
    await factory.aclose()
