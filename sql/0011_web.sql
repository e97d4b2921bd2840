-- 0011: cordon-web's operators, sessions and lock-outs (issue 18;
-- docs/web.md). cordonctl operator add|list|remove|unlock manages the
-- operators; cordon-web reads them and keeps the sessions.

-- Who may log in to the console. sites empty: every site.
CREATE TABLE operators (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    sites        text[] NOT NULL DEFAULT '{}',
    -- libsodium's crypto_pwhash_str(): "$argon2id$v=19$m=...,t=...,p=1$salt$hash"
    pwhash       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A logged-in browser. The cookie holds a random token; only its SHA-256
-- is kept, so a copy of the table logs nobody in.
CREATE TABLE web_sessions (
    token_hash   bytea PRIMARY KEY,
    operator     text NOT NULL REFERENCES operators ON DELETE CASCADE,
    csrf         text NOT NULL,
    addr         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- Failed logins per name, whether or not the name is an operator's (so a
-- refusal does not tell which names exist). A name is locked out until
-- locked_until after [web] lockout_after failures in a row.
CREATE TABLE web_lockouts (
    name         text PRIMARY KEY,
    failures     integer NOT NULL DEFAULT 0,
    last_failure timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz
);
