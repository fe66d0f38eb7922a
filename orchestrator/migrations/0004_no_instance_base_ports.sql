-- The web role reaches instances only through their supervisor's relay
-- (`ws://<ip_address>:<port>/instances/<slot>/…`), and each supervisor knows its own port plan,
-- so the base ports of a server's instances are no longer stored. A plain DROP COLUMN, the
-- same on SQLite (3.35 and later) and PostgreSQL: neither column is a key, unique, indexed or
-- referenced.
ALTER TABLE servers DROP COLUMN signaling_base_port;
ALTER TABLE servers DROP COLUMN api_websocket_base_port;
