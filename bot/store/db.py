"""The bot's state in one SQLite file (WAL): one savepoint per state change, fsynced before any action it precedes.

Everything a restart needs is here before the action it describes: a lead change before it is copied,
an intent (with its client order id) before its order is sent, an order's outcome before the next step. The
store is one class over books with one job each: the connection and its transactions (`connection.py`), the
lead (`lead.py`), followers (`followers.py`), plans, orders and fills (`orders.py`), equity (`equity.py`), and
settlement (`settlement.py`); the tables are in `schema.py` and the rows it answers with in `rows.py`.
"""

from __future__ import annotations

from pathlib import Path

from bot.store.equity import EquityBook
from bot.store.followers import FollowerBook
from bot.store.lead import LeadBook
from bot.store.settlement import SettlementBook


class Store(FollowerBook, LeadBook, EquityBook):
    """The whole state: every book on one connection, and the settlement book beside them."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.settlement = SettlementBook(self)  # the settlement tables, on this connection
