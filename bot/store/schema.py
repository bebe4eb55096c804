"""The state file's tables, indexes and migrations (the version is kept in `meta`)."""

from __future__ import annotations

from bot.core.model import (
    OPEN_STATUSES,
)

SCHEMA_VERSION = 3

# an intent not final yet (OPEN_STATUSES) in SQL: the partial index below and the queries it serves say it alike
OPEN_SQL = "status IN ({})".format(",".join(f"'{status}'" for status in OPEN_STATUSES))

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lead_positions (
    symbol TEXT PRIMARY KEY, amount TEXT NOT NULL, entry_price TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lead_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, symbol TEXT NOT NULL, prev TEXT NOT NULL, now TEXT NOT NULL,
    entry_prev TEXT NOT NULL, entry_now TEXT NOT NULL, fill_price TEXT, lead_equity TEXT NOT NULL,
    detected_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS followers (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, investment TEXT NOT NULL, reserve TEXT NOT NULL,
    start_equity TEXT NOT NULL, last_seq INTEGER NOT NULL, activated_ms INTEGER NOT NULL,
    bootstrapped INTEGER NOT NULL DEFAULT 0, state_reason TEXT NOT NULL DEFAULT '',
    config_hash TEXT NOT NULL DEFAULT '', pending_increase TEXT NOT NULL DEFAULT '0',
    ended_ms INTEGER NOT NULL DEFAULT 0, number INTEGER NOT NULL DEFAULT 0, episode INTEGER NOT NULL DEFAULT 0,
    closing_to TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS episodes (
    follower TEXT NOT NULL, episode INTEGER NOT NULL, activated_ms INTEGER NOT NULL, start_copy_equity TEXT NOT NULL,
    ended_ms INTEGER, end_copy_equity TEXT, PRIMARY KEY (follower, episode));
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, follower TEXT NOT NULL, amount TEXT NOT NULL, reason TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL, reserve_after TEXT, episode INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS follower_positions (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS follower_ignored (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS follower_bootstrap (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS follower_leverage (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, leverage TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS plans (
    follower TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, planned_ms INTEGER NOT NULL,
    PRIMARY KEY (follower, kind, seq));
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, follower TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, leg TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT NOT NULL,
    reduce_only INTEGER NOT NULL, client_order_id TEXT NOT NULL, status TEXT NOT NULL,
    order_id TEXT, filled TEXT NOT NULL DEFAULT '0', avg_price TEXT, error TEXT,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    UNIQUE (follower, client_order_id), UNIQUE (follower, kind, seq, idx));
CREATE TABLE IF NOT EXISTS fills (
    follower TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id TEXT NOT NULL, symbol TEXT NOT NULL,
    signed_qty TEXT NOT NULL, price TEXT NOT NULL, recorded_ms INTEGER NOT NULL,
    fee_base TEXT NOT NULL DEFAULT '0', fee_quote TEXT NOT NULL DEFAULT '0', PRIMARY KEY (follower, order_id));
CREATE TABLE IF NOT EXISTS spot_reserves (
    follower TEXT NOT NULL, asset TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (follower, asset));
CREATE TABLE IF NOT EXISTS skips (
    id INTEGER PRIMARY KEY AUTOINCREMENT, follower TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    event TEXT NOT NULL, symbol TEXT NOT NULL, detail TEXT NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (
    id TEXT PRIMARY KEY, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, settled_ms INTEGER,
    completed_ms INTEGER);
CREATE TABLE IF NOT EXISTS boundary_equity (
    cycle TEXT NOT NULL, account TEXT NOT NULL, equity TEXT NOT NULL, copy_equity TEXT NOT NULL,
    taken_ms INTEGER NOT NULL, late INTEGER NOT NULL, PRIMARY KEY (cycle, account));
CREATE TABLE IF NOT EXISTS settlements (
    cycle TEXT NOT NULL, follower TEXT NOT NULL, e_start TEXT NOT NULL, e_end TEXT NOT NULL, flows TEXT NOT NULL,
    fees TEXT NOT NULL, funding TEXT NOT NULL, pnl TEXT NOT NULL, compensation TEXT NOT NULL,
    profit_share TEXT NOT NULL, fee_rebate TEXT NOT NULL, late INTEGER NOT NULL, recorded_ms INTEGER NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cycle, follower, episode));
CREATE TABLE IF NOT EXISTS transfers (
    client_tran_id TEXT PRIMARY KEY, cycle TEXT NOT NULL, follower TEXT NOT NULL, kind TEXT NOT NULL,
    from_account TEXT NOT NULL, to_account TEXT NOT NULL, amount TEXT NOT NULL, status TEXT NOT NULL,
    tran_id TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS equity (
    account TEXT PRIMARY KEY, equity TEXT NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS equity_bases (
    follower TEXT PRIMARY KEY, account_equity TEXT NOT NULL, positions TEXT NOT NULL, marks TEXT NOT NULL,
    last_fill INTEGER NOT NULL, read_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS intents_open ON intents (follower) WHERE {OPEN_SQL};
CREATE INDEX IF NOT EXISTS plans_by_change ON plans (kind, seq);
"""

# version 1 -> 2: follower numbers (ids unique by construction), activation episodes, the reserve after each
# flow, closing states, transfer back-off, settlement rows per episode, emails kept for transfers
_MIGRATE_1_TO_2 = """
ALTER TABLE followers ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE followers ADD COLUMN episode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE followers ADD COLUMN closing_to TEXT NOT NULL DEFAULT '';
ALTER TABLE followers ADD COLUMN email TEXT NOT NULL DEFAULT '';
UPDATE followers SET number = rowid;
UPDATE followers SET episode = 1 WHERE state NOT IN ('pending_capacity', 'config_error') OR bootstrapped = 1;
INSERT INTO episodes SELECT f.name, 1, f.activated_ms,
    COALESCE((SELECT amount FROM flows WHERE follower = f.name AND reason = 'activation' ORDER BY id DESC LIMIT 1),
             f.investment),
    CASE WHEN f.state IN ('stopped_loss', 'ended') THEN f.ended_ms END, NULL
    FROM followers f WHERE f.episode = 1;
ALTER TABLE flows ADD COLUMN reserve_after TEXT;
ALTER TABLE flows ADD COLUMN episode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE cycles ADD COLUMN completed_ms INTEGER;
UPDATE cycles SET completed_ms = settled_ms;
ALTER TABLE transfers ADD COLUMN episode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE transfers ADD COLUMN next_attempt_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE settlements RENAME TO settlements_v1;
CREATE TABLE settlements (
    cycle TEXT NOT NULL, follower TEXT NOT NULL, e_start TEXT NOT NULL, e_end TEXT NOT NULL, flows TEXT NOT NULL,
    fees TEXT NOT NULL, funding TEXT NOT NULL, pnl TEXT NOT NULL, compensation TEXT NOT NULL,
    profit_share TEXT NOT NULL, fee_rebate TEXT NOT NULL, late INTEGER NOT NULL, recorded_ms INTEGER NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cycle, follower, episode));
INSERT INTO settlements SELECT *, 1 FROM settlements_v1;
DROP TABLE settlements_v1;
"""

# version 2 -> 3: spot fills keep the fee charged in the asset bought and in USDT (a copy holding is net of it)
_MIGRATE_2_TO_3 = """
ALTER TABLE fills ADD COLUMN fee_base TEXT NOT NULL DEFAULT '0';
ALTER TABLE fills ADD COLUMN fee_quote TEXT NOT NULL DEFAULT '0';
"""

MIGRATIONS = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3}  # from version n to n + 1
