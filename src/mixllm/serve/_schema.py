"""The SQLite schema of :mod:`mixllm.serve.store`: its migrations, oldest first (PostgreSQL has
its own, :data:`mixllm.serve._postgres.PG_MIGRATIONS`)."""

from __future__ import annotations

from mixllm.serve._store_checkpoints import CHECKPOINT_DATA_MIGRATION
from mixllm.serve._store_pacing import PACING_MIGRATION

__all__ = ["MIGRATIONS"]

#: Schema changes, oldest first. Never edit one that has shipped: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE decisions (
        decision_id TEXT PRIMARY KEY NOT NULL,
        created_at REAL NOT NULL,
        key_id TEXT NOT NULL,
        request_model TEXT NOT NULL,
        query_id TEXT NOT NULL,
        llm TEXT NOT NULL,
        lam REAL NOT NULL,
        prompt_tokens REAL,              -- NULL: unknown (NaN in Decision)
        scores TEXT NOT NULL,            -- JSON objects: LLM name -> number
        predicted_quality TEXT NOT NULL,
        predicted_cost_usd TEXT NOT NULL,
        predicted_wait_s TEXT NOT NULL,
        embedding BLOB,                  -- little-endian float32, embedding_dim of them
        embedding_dim INTEGER,
        answered_by TEXT,                -- the LLM that answered in the end (after fallbacks)
        cost_usd REAL
    );
    CREATE TABLE feedback (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id TEXT NOT NULL UNIQUE REFERENCES decisions (decision_id),
        received_at REAL NOT NULL,
        quality REAL,
        cost_usd REAL,
        reward INTEGER CHECK (reward IN (0, 1))
    );
    CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        path TEXT NOT NULL,
        feedback_seq INTEGER NOT NULL    -- the last feedback seq the checkpoint includes
    );
    CREATE TABLE spend (key_id TEXT PRIMARY KEY NOT NULL, usd REAL NOT NULL CHECK (usd >= 0));
    """,
    "CREATE INDEX decisions_created_at ON decisions (created_at);",
    """
    ALTER TABLE decisions ADD COLUMN session_id TEXT;  -- NULL: not part of a conversation
    CREATE INDEX decisions_session ON decisions (session_id, key_id, created_at);
    CREATE TABLE status (                 -- one row
        id INTEGER PRIMARY KEY CHECK (id = 1),
        heartbeat_at REAL,                -- the last heartbeat: a write that proves we can
        purged_feedback_seq INTEGER NOT NULL DEFAULT 0  -- retention deleted feedback up to it
    );
    INSERT INTO status (id) VALUES (1);
    """,
    """
    ALTER TABLE decisions ADD COLUMN prompt TEXT;         -- the text routed on (NULL: not kept)
    ALTER TABLE decisions ADD COLUMN output_tokens REAL;  -- the answer's tokens, when known
    ALTER TABLE decisions ADD COLUMN latency_s REAL;      -- seconds to the whole answer, if known
    ALTER TABLE decisions ADD COLUMN shadow_of TEXT;      -- a shadow call: the decision shadowed
    ALTER TABLE decisions ADD COLUMN shadow_outcome TEXT; -- its outcome (learned, unknown_quality)
    CREATE TABLE shadow_spend (day TEXT PRIMARY KEY NOT NULL, usd REAL NOT NULL CHECK (usd >= 0));
    """,
    PACING_MIGRATION,
    CHECKPOINT_DATA_MIGRATION,
)
