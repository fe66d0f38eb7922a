-- The client address (an IPv4 address, or an IPv6 /64) that launched each live instance, for
-- the cap on live instances per address. Cleared when the instance ends, so no address is kept
-- longer than the instance it launched.
ALTER TABLE instances ADD COLUMN client_address TEXT;
