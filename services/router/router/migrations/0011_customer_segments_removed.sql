-- A customer whose key account was deactivated or removed keeps a row with no segment and the
-- version that said so: without it, an older `key_account` event delivered late would find no
-- row and make the customer a key account again.
ALTER TABLE customer_segments ALTER COLUMN segment DROP NOT NULL;
