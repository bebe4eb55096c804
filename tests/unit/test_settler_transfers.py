"""One edge of the settler: every transfer attempt is committed (fsynced) before it is sent, so that after a
crash or a power cut the next attempt looks the transfer up instead of relying on the exchange to refuse a
repeated id. The treasury is a fake here: what is under test is the order of commit and send."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot import logs
from bot.core.model import TransferStatus
from bot.engine.settle import Settler, retry_delay_s
from bot.settings import AccountSettings, FollowerSettings, Settings
from bot.store.db import Store
from bot.store.settlement import SettlementRecord, Transfer

D = Decimal


class Treasury:
    """Records, at the moment of each call, the attempts the state file holds for the transfer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[tuple[str, int]] = []

    def _attempts(self) -> int:
        with sqlite3.connect(self.path) as db:  # another connection: only what was committed is visible
            return int(db.execute("SELECT attempts FROM transfers").fetchone()[0])

    async def find_transfer(self, client_tran_id: str) -> str | None:
        self.calls.append(("find", self._attempts()))
        return None

    async def universal_transfer(self, client_tran_id: str, source: str, target: str, amount: Decimal) -> str:
        self.calls.append(("send", self._attempts()))
        if len(self.calls) == 1:
            raise_unknown()
        return "42"


def raise_unknown() -> None:
    from bot.venue.errors import UnknownOutcome

    raise UnknownOutcome("connection dropped after the request left")


class Clock:
    now = 1_000_000

    def now_ms(self) -> int:
        return self.now


def settings() -> Settings:
    account: dict[str, Any] = {"environment": "paper", "api_url": "http://127.0.0.1:9"}
    return Settings(
        lead=AccountSettings(name="lead", api_key_env="A", api_secret_env="B", email="lead@x", **account),
        followers=(
            FollowerSettings(
                name="f1", api_key_env="C", api_secret_env="D", email="f1@x", investment=D(1000), **account
            ),
        ),
        treasury=AccountSettings(name="master", api_key_env="E", api_secret_env="F", email="m@x", **account),
    )


async def test_each_attempt_is_durable_before_it_is_sent_and_a_resend_looks_up_first(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    clock = Clock()
    try:
        store.register_waiting("f1", D(1000), "", 0)
        record = SettlementRecord("S6-1", "f1", 1, D(1000), D(980), D(0), D(0), D(0), D(-20), D(20), D(0), D(0), False)
        transfer = Transfer("st-x-1-1-1c", "S6-1", "f1", 1, "compensation", "lead", "f1", D(20), TransferStatus.PENDING)
        store.settlement.record(6000, 12000, record, [transfer], 0)
        treasury = Treasury(path)
        settler = Settler(settings(), store, {"master": treasury}, clock, logs.get())  # type: ignore[dict-item]
        await settler.send_transfers()  # the first attempt's answer is lost
        clock.now += int(retry_delay_s(1) * 1000)
        await settler.send_transfers()  # the second attempt looks up before it sends again
        assert treasury.calls == [("send", 1), ("find", 2), ("send", 2)]
        assert [t.status for t in store.settlement.transfers()] == ["done"]
    finally:
        store.close()


def test_the_back_off_doubles_and_is_capped() -> None:
    assert [retry_delay_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay_s(40) == 600.0
