-- The web role's schema. Portable SQL: the same file runs on SQLite and PostgreSQL (TEXT and
-- BIGINT only; times are milliseconds since the Unix epoch).

-- Rendering servers, as in the seeds' backend (seed 001: server_id, region, ip_address, port,
-- status, available_instances, num_instances, ram, graphics_card, storage), plus the base of
-- the instances' rust-core signaling ports, which the signaling proxy needs.
CREATE TABLE servers (
    server_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    port BIGINT NOT NULL,
    status TEXT NOT NULL,
    available_instances BIGINT NOT NULL,
    num_instances BIGINT NOT NULL,
    ram TEXT NOT NULL,
    graphics_card TEXT NOT NULL,
    storage TEXT NOT NULL,
    signaling_base_port BIGINT NOT NULL,
    UNIQUE (ip_address, port)
);

-- One row per browser. The browser keeps the token; only its SHA-256 is stored.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

-- Instances launched through the web role. `status` is INITIALIZING, RUNNING,
-- DEINITIALIZING or ENDED (then `end_reason` says why, in words for the page).
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    server_id TEXT NOT NULL REFERENCES servers (server_id),
    slot BIGINT NOT NULL,
    status TEXT NOT NULL,
    end_reason TEXT,
    created_at BIGINT NOT NULL,
    running_at BIGINT,
    ended_at BIGINT,
    width BIGINT,
    height BIGINT
);
CREATE INDEX instances_by_session ON instances (session_id, created_at);
CREATE INDEX instances_by_status ON instances (status);

-- View-only share links: a second token per instance.
CREATE TABLE shares (
    token_hash TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances (instance_id),
    created_at BIGINT NOT NULL
);
