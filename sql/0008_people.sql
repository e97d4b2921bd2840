-- 0008: the compound's people work (issue 16): the needs ledger, the daily
-- welfare calls to isolated households, the drop-off point at the gate, the
-- residents' register, volunteers, and the reasons for exception cards.
-- Event tables follow 0001/0006: event_key from the message alone, the
-- content hash of what it says.

-- Every step of every need (需求台账); needs holds one row per need,
-- folded from its steps in any order (src/tables.c, NEED_FOLD).
CREATE TABLE need_events (
    event_key    text PRIMARY KEY,
    site         text NOT NULL,
    need_id      text NOT NULL,
    action       text NOT NULL CHECK (action IN ('open', 'assign', 'deliver', 'cancel')),
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    household    text,
    category     text,                     -- groceries|medicine|elderly_care|counselling|other
    due          timestamptz,              -- delivered by then, or need_overdue
    by_whom      text,                     -- the volunteer (assign, deliver) or operator
    call_id      text,                     -- the hotline or welfare call that opened it
    note         text,
    flags        text[] NOT NULL DEFAULT '{}',
    content_hash bytea
);
CREATE INDEX need_events_need ON need_events (site, need_id, ts);

CREATE TABLE needs (
    site         text NOT NULL,
    need_id      text NOT NULL,
    household    text,
    category     text,
    -- delivered > cancelled > assigned > open: the furthest step seen,
    -- whatever order the steps came in.
    status       text NOT NULL CHECK (status IN ('open', 'assigned', 'delivered', 'cancelled')),
    opened_at    timestamptz,
    due          timestamptz,
    assigned_to  text,
    assigned_at  timestamptz,
    delivered_at timestamptz,
    delivered_by text,
    cancelled_at timestamptz,
    call_id      text,
    note         text,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (site, need_id)
);
CREATE INDEX needs_open ON needs (site, status) WHERE status IN ('open', 'assigned');
CREATE INDEX needs_household ON needs (site, household);

-- The daily welfare call to each household under isolation (not a health
-- check: no temperature).
CREATE TABLE welfare_calls (
    event_key    text PRIMARY KEY,
    site         text NOT NULL,
    household    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    by_whom      text,
    outcome      text NOT NULL CHECK (outcome IN ('reached', 'no_answer', 'needs_help', 'counselling')),
    note         text,
    flags        text[] NOT NULL DEFAULT '{}',
    content_hash bytea
);
CREATE INDEX welfare_calls_site_hh_ts ON welfare_calls (site, household, ts);

-- Deliveries left at the drop-off point for a household, and their
-- collection.
CREATE TABLE dropoffs (
    event_key    text PRIMARY KEY,
    site         text NOT NULL,
    household    text NOT NULL,
    ts           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    item         text,
    action       text NOT NULL CHECK (action IN ('placed', 'collected')),
    by_whom      text,
    note         text,
    flags        text[] NOT NULL DEFAULT '{}',
    content_hash bytea
);
CREATE INDEX dropoffs_site_hh_ts ON dropoffs (site, household, ts);

-- The residents' register (cordonctl import residents): names, phones and
-- ID numbers never leave the database; an ID number is kept only as the
-- keyed hash cordond gives it ("id:" + 32 hex digits of HMAC-SHA256 under
-- [site] id_key_file), the same value gate events carry in `person`.
ALTER TABLE residents ADD COLUMN born date,
                      ADD COLUMN phone text,
                      ADD COLUMN id_hash text;
CREATE INDEX residents_household ON residents (site, household);

-- The volunteer team that delivers.
CREATE TABLE volunteers (
    site        text NOT NULL REFERENCES sites,
    volunteer   text NOT NULL CHECK (volunteer ~ '^[A-Za-z0-9_-]{1,64}$'),
    team        text,
    phone       text,                      -- never leaves the database
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, volunteer)
);

-- Why a card is an exception (extra): 'carer' for the children caring for
-- a bedridden parent, or another word the operator gives.
ALTER TABLE cards ADD COLUMN reason text;

-- How many disinfections a day a zone's schedule asks for (the report's
-- "against the schedule"); NULL: 16 h / the zone's interval.
ALTER TABLE zones ADD COLUMN per_day integer CHECK (per_day > 0);
