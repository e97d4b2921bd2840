-- 0012: several cordond instances share the sites (issue 19;
-- docs/scaling.md). Sites are split into [cluster] shards shards by a hash
-- of the site (cluster_shard_of() in src/cluster.c); each shard is owned by
-- one instance at a time through a lease here. Every time is PostgreSQL's
-- clock (clock_timestamp()), so the instances' own clocks play no part.

-- The number of shards, written by the first clustered instance; one with
-- another number refuses to start (the hash would place sites elsewhere).
CREATE TABLE cluster_settings (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    shards      integer NOT NULL CHECK (shards BETWEEN 1 AND 256),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each instance's heartbeat: alive while seen_at is within its lease time
-- and it is not stopping (a stopping instance takes nothing and gives its
-- shards back, so the others' fair share leaves it out).
CREATE TABLE cluster_instances (
    instance    text PRIMARY KEY,       -- its [mqtt] client_id
    host        text NOT NULL,
    pid         integer NOT NULL,
    version     text NOT NULL,
    metrics     text NOT NULL DEFAULT '', -- its [metrics] listen
    lease_ms    integer NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL,
    stopping_at timestamptz,              -- a clean stop began (SIGTERM)
    stopped_at  timestamptz               -- ... and every lease was given back
);

-- One row per shard. epoch is the fencing token: it grows by one at every
-- acquisition, and whatever an owner writes for its shard names the epoch
-- it holds; a write naming an older epoch is refused.
CREATE TABLE shard_leases (
    shard       integer PRIMARY KEY CHECK (shard >= 0 AND shard < 256),
    owner       text,                   -- NULL: free
    epoch       bigint NOT NULL DEFAULT 0,
    acquired_at timestamptz,
    expires_at  timestamptz
);

-- Every lease held, for `cordonctl cluster --history` and the tests that
-- prove no two owners overlap: [acquired_at, ended_at) per (shard, epoch).
-- ended_at is NULL while held; how: released | expired | lost.
CREATE TABLE lease_history (
    shard       integer NOT NULL,
    epoch       bigint NOT NULL,
    owner       text NOT NULL,
    acquired_at timestamptz NOT NULL,
    ended_at    timestamptz,
    how         text CHECK (how IN ('released', 'expired', 'lost')),
    PRIMARY KEY (shard, epoch)
);
