-- 0013: the hand-over of a registered site from shard 0's stream to its own
-- shard's (docs/scaling.md; include/handover.h). Clustered with [cluster]
-- discovery on, shard 0's session subscribes to every site and serves those
-- no other shard serves yet; a registered site of shard s != 0 moves to
-- shard s's session at a marker on <root>/<site>/_handover, published by
-- shard s's owner once its session is subscribed to the site. A row here
-- records how far that went, so that another instance (a new owner of
-- either shard after a crash or a takeover) carries on where it stopped.
-- The register thread writes it (registry_note_handover()) and every
-- instance reads it into its register snapshot (reg_site.handover). A step
-- recorded stays, with the time it was first recorded; a site removed from
-- the register takes its row with it (registered again, it is handed over
-- again).

CREATE TABLE site_handovers (
    site             text PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    -- the shard the site was handed to (cluster_shard_of() with the
    -- cluster's shards): the one that recorded sent_at; NULL: marked done
    -- by this migration (below)
    shard            integer CHECK (shard >= 0 AND shard < 256),
    -- HANDOVER_SENT: a marker of the site may have been published (written
    -- before the first one is); from then on shard's session passes the
    -- site's messages it cannot place
    sent_at          timestamptz,
    -- HANDOVER_DISCOVERY_CUT: shard 0's stream passed a marker and what it
    -- took before the marker is committed; from then on shard 0's session
    -- drops the site's messages and the site's rule state is of `shard`
    discovery_cut_at timestamptz
);

-- A database that ran clustered before (issue 19: no discovery; each shard's
-- session subscribed to its registered sites, and holds what came for them
-- while cordond was down): every registered site is handed over already.
-- Without this, each shard's gate would hold its sites until a marker and
-- drop that backlog. A database never clustered (one instance, shards = 0,
-- its own session subscribed to every site) hands its sites over through
-- markers at the first clustered start: shard 0's wildcard session takes
-- them meanwhile.
INSERT INTO site_handovers (site, shard, sent_at, discovery_cut_at)
SELECT site, NULL, now(), now() FROM sites WHERE EXISTS (SELECT 1 FROM cluster_settings);
