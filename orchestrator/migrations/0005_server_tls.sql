-- Whether a server's supervisor port speaks TLS (`wss://`; 1) or not (`ws://`; 0). Kept with
-- the address because every web role sharing this database connects with it: one that took a
-- TLS supervisor for a plain one would send the supervisor secret in the clear. Rows from
-- before TLS existed are plain, as they were. BIGINT like the other numbers here, the same on
-- SQLite and PostgreSQL through sqlx's Any driver.
ALTER TABLE servers ADD COLUMN tls BIGINT NOT NULL DEFAULT 0;
