-- The base of the instances' OpenSpace JSON API WebSocket ports (instance N listens on
-- api_websocket_base_port + N, the seeds' 4682 + id), which the web role's proxy for that API
-- needs. Rows registered before this column existed get OpenSpace's default base.
ALTER TABLE servers ADD COLUMN api_websocket_base_port BIGINT NOT NULL DEFAULT 4682;
