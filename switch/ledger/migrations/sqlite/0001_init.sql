-- Ledger schema v1 (SQLite). Keep in step with ../postgres/0001_init.sql: same tables, columns and meaning.
-- Amounts are integer fen; business dates are integers YYYYMMDD; timestamps are ISO 8601 text in UTC.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('rrn', 0);

-- the open business date is max(calendar date of now, last_closed + 1) (SPEC §6; `switch day close`)
CREATE TABLE business_day (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_closed INTEGER,
    closed_at   TEXT
);
INSERT INTO business_day (id, last_closed, closed_at) VALUES (1, NULL, NULL);

-- card accounts keep a running balance (checked against overdraft under the card's lock); the house
-- accounts (program float, merchant payables, fee income, rebate expense) are only ever the sum of their
-- postings, so no hot row serializes concurrent transactions
CREATE TABLE accounts (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('card', 'merchant', 'float', 'fee_income', 'rebate_expense')),
    ref     TEXT NOT NULL,
    balance INTEGER,
    UNIQUE (kind, ref),
    CHECK ((kind = 'card') = (balance IS NOT NULL)),
    CHECK (balance IS NULL OR balance >= 0)
);
INSERT INTO accounts (id, kind, ref, balance) VALUES (1, 'float', '', NULL);
INSERT INTO accounts (id, kind, ref, balance) VALUES (2, 'fee_income', '', NULL);
INSERT INTO accounts (id, kind, ref, balance) VALUES (3, 'rebate_expense', '', NULL);

CREATE TABLE merchants (
    mid        TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    mdr_bps    INTEGER NOT NULL CHECK (mdr_bps >= 0),
    fee_cap    INTEGER NOT NULL CHECK (fee_cap >= 0),
    rebate_bps INTEGER NOT NULL CHECK (rebate_bps >= 0),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    created_at TEXT NOT NULL
);

CREATE TABLE terminals (
    tid          TEXT PRIMARY KEY,
    mid          TEXT NOT NULL REFERENCES merchants (mid),
    kind         TEXT NOT NULL CHECK (kind IN ('pos', 'service_hall')),
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    tmk_lmk      TEXT NOT NULL,
    pik_lmk      TEXT NOT NULL DEFAULT '',
    mak_lmk      TEXT NOT NULL DEFAULT '',
    tdk_lmk      TEXT NOT NULL DEFAULT '',
    keys_at      TEXT,
    batch        TEXT NOT NULL DEFAULT '000000',
    batch_status TEXT NOT NULL DEFAULT 'open' CHECK (batch_status IN ('open', 'settled')),
    mac_failures INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);

CREATE TABLE cards (
    -- column order keeps digit-only values apart on disk (each is followed by letters or by a timestamp
    -- whose year ends the run), so no PAN-like digit run appears in the database file for data-discovery
    -- scanners to flag; the PAN itself is stored only as its keyed hash (token) and first 6 / last 4
    token              TEXT PRIMARY KEY,
    first6             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('inactive', 'active', 'lost', 'frozen', 'closed')),
    last4              TEXT NOT NULL,
    expiry             TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    pin_offset         TEXT NOT NULL DEFAULT '',
    updated_at         TEXT NOT NULL,
    mobile             TEXT NOT NULL DEFAULT '',
    name               TEXT NOT NULL DEFAULT '',
    member_id          TEXT NOT NULL DEFAULT '',
    employer_id        TEXT NOT NULL DEFAULT '',
    pvk_ref            TEXT NOT NULL DEFAULT '',
    sequence           INTEGER,
    pin_tries          INTEGER NOT NULL DEFAULT 0,
    account_id         INTEGER NOT NULL UNIQUE REFERENCES accounts (id),
    -- purchase counters of the business date daily_date (reset when the date moves on)
    daily_date         INTEGER NOT NULL DEFAULT 0,
    daily_amount       INTEGER NOT NULL DEFAULT 0,
    daily_count        INTEGER NOT NULL DEFAULT 0,
    -- per-card limits; NULL = the program's
    limit_daily_amount INTEGER,
    limit_daily_count  INTEGER
);
CREATE INDEX cards_member ON cards (member_id);

-- one row per request (POS, bulk top-up line, rebate, operator action, provisioning load), keyed by its
-- idempotency key; the reply fields a retransmission gets again are in `reply` (JSON)
CREATE TABLE journal (
    id            INTEGER PRIMARY KEY,
    idem_key      TEXT NOT NULL UNIQUE,
    fingerprint   TEXT NOT NULL DEFAULT '',
    kind          TEXT NOT NULL,
    source        TEXT NOT NULL,
    rc            TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    business_date INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    mti           TEXT NOT NULL DEFAULT '',
    pcode         TEXT NOT NULL DEFAULT '',
    tid           TEXT NOT NULL DEFAULT '',
    mid           TEXT NOT NULL DEFAULT '',
    batch         TEXT NOT NULL DEFAULT '',
    stan          TEXT NOT NULL DEFAULT '',
    card_token    TEXT NOT NULL DEFAULT '',
    amount        INTEGER NOT NULL DEFAULT 0,
    fee           INTEGER NOT NULL DEFAULT 0,
    rrn           TEXT NOT NULL UNIQUE,
    auth_code     TEXT NOT NULL DEFAULT '',
    reply         TEXT NOT NULL DEFAULT '{}',
    -- ok | voided | reversed (approved money rows only)
    status        TEXT NOT NULL DEFAULT 'ok',
    refunded      INTEGER NOT NULL DEFAULT 0,
    reversed_date INTEGER,
    orig_id       INTEGER REFERENCES journal (id),
    orig_rrn      TEXT NOT NULL DEFAULT '',
    orig_date     INTEGER,
    orig_kind     TEXT NOT NULL DEFAULT '',
    detail        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX journal_date ON journal (business_date, id);
CREATE INDEX journal_batch ON journal (tid, batch, stan);
CREATE INDEX journal_orig ON journal (orig_id) WHERE orig_id IS NOT NULL;

-- one leg per account and journal row (the rules never post twice to one account in one row)
CREATE TABLE postings (
    journal_id INTEGER NOT NULL REFERENCES journal (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    amount     INTEGER NOT NULL,
    PRIMARY KEY (journal_id, account_id)
) WITHOUT ROWID;
CREATE INDEX postings_account ON postings (account_id, journal_id);

CREATE TABLE topup_orders (
    order_id    TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    employer_id TEXT NOT NULL,
    card_token  TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    item        TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    journal_id  INTEGER NOT NULL REFERENCES journal (id)
);
CREATE INDEX topup_orders_employer ON topup_orders (employer_id);

-- SMS outbox: written in the money transaction, delivered at least once by `switch notify send`
CREATE TABLE notices (
    journal_id INTEGER PRIMARY KEY REFERENCES journal (id),
    -- the stable id receivers deduplicate on: sms-<RRN of the journal row>
    id         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    mobile     TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'cancelled')),
    sent_at    TEXT
);
CREATE INDEX notices_pending ON notices (journal_id) WHERE status = 'pending';

CREATE TABLE clearing_files (
    business_date INTEGER PRIMARY KEY,
    file_id       TEXT NOT NULL,
    -- as written in the file header (local time with its offset): a regenerated file is byte-identical
    created_at    TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    d_count       INTEGER NOT NULL
);
