-- 0002: the other inbound topics, and the household register (SPEC 5).

CREATE TABLE gate_status (
    event_key   text PRIMARY KEY,
    site        text NOT NULL,
    gate        text NOT NULL,
    ts          timestamptz NOT NULL,      -- device time, or receive time (a will has none)
    received_at timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('online', 'offline', 'open', 'closed', 'forced')),
    flags       text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX gate_status_site_gate_ts ON gate_status (site, gate, ts);

CREATE TABLE disinfections (
    event_key   text PRIMARY KEY,
    site        text NOT NULL,
    zone        text NOT NULL,
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    crew        text,
    agent       text,
    flags       text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX disinfections_site_zone_ts ON disinfections (site, zone, ts);

-- Every step of every call; hotline_calls holds one row per call.
CREATE TABLE hotline_events (
    event_key   text PRIMARY KEY,
    site        text NOT NULL,
    call_id     text NOT NULL,
    action      text NOT NULL CHECK (action IN ('open', 'update', 'resolve')),
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    household   text,
    category    text,
    urgent      boolean,
    note        text,
    flags       text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX hotline_events_call ON hotline_events (site, call_id, ts);

CREATE TABLE hotline_calls (
    call_id     text NOT NULL,
    site        text NOT NULL,
    household   text,
    category    text,
    urgent      boolean,
    status      text NOT NULL CHECK (status IN ('open', 'resolved')),
    opened_at   timestamptz,
    resolved_at timestamptz,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (site, call_id)
);

CREATE TABLE isolation_checks (
    event_key   text PRIMARY KEY,
    site        text NOT NULL,
    household   text NOT NULL,
    person      text,
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    temp_c      numeric(4,1),
    symptoms    text[] NOT NULL DEFAULT '{}',
    flags       text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX isolation_checks_site_hh_ts ON isolation_checks (site, household, ts);

CREATE TABLE acks (
    event_key   text PRIMARY KEY,
    site        text NOT NULL,
    alert_id    text NOT NULL,
    by_whom     text NOT NULL,
    action      text NOT NULL CHECK (action IN ('ack', 'resolve')),
    note        text,
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL
);

-- The register (managed by cordonctl; cordond caches it and reloads on
-- NOTIFY cordon_register).
CREATE TABLE sites (
    site        text PRIMARY KEY CHECK (site ~ '^[A-Za-z0-9_-]{1,64}$'),
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gates (
    site        text NOT NULL REFERENCES sites,
    gate        text NOT NULL CHECK (gate ~ '^[A-Za-z0-9_-]{1,64}$'),
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'sealed')),
    format      text NOT NULL DEFAULT 'auto'
                CHECK (format IN ('auto', 'canonical', 'hikvision', 'dahua', 'ezviz', 'wecom', 'diy')),
    unit        text NOT NULL DEFAULT 'c' CHECK (unit IN ('c', 'f', 'k')),
    active      boolean NOT NULL DEFAULT true,
    PRIMARY KEY (site, gate)
);

CREATE TABLE zones (
    site        text NOT NULL REFERENCES sites,
    zone        text NOT NULL CHECK (zone ~ '^[A-Za-z0-9_-]{1,64}$'),
    interval_s  integer NOT NULL DEFAULT 14400 CHECK (interval_s > 0),
    PRIMARY KEY (site, zone)
);

CREATE TABLE households (
    site        text NOT NULL REFERENCES sites,
    household   text NOT NULL CHECK (household ~ '^[A-Za-z0-9_-]{1,64}$'),
    building    text NOT NULL,
    unit        text NOT NULL,
    room        text NOT NULL,
    size        integer NOT NULL CHECK (size BETWEEN 0 AND 50),
    phone       text,                      -- never leaves the database
    PRIMARY KEY (site, household)
);

CREATE TABLE residents (
    site        text NOT NULL,
    person      text NOT NULL,
    household   text NOT NULL,
    name        text,                      -- never leaves the database
    PRIMARY KEY (site, person),
    FOREIGN KEY (site, household) REFERENCES households ON DELETE CASCADE
);

CREATE TABLE cards (
    site        text NOT NULL,
    card        text NOT NULL,
    household   text NOT NULL,
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
    extra       boolean NOT NULL DEFAULT false,   -- e.g. a carer's second card
    PRIMARY KEY (site, card),
    FOREIGN KEY (site, household) REFERENCES households ON DELETE CASCADE
);

CREATE TABLE isolation_orders (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    household   text NOT NULL,
    person      text,                      -- NULL: the whole household
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    check_interval_s integer NOT NULL DEFAULT 43200,
    released_at timestamptz,
    FOREIGN KEY (site, household) REFERENCES households ON DELETE CASCADE
);
CREATE INDEX isolation_orders_active ON isolation_orders (site, household)
    WHERE released_at IS NULL;
