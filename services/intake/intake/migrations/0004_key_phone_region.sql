-- The integration's region for phone numbers written without a country code (ISO 3166
-- alpha-2), used when the contact itself gives no better hint; NULL: the service's default.
ALTER TABLE api_keys ADD COLUMN phone_region text CHECK (phone_region ~ '^[A-Z]{2}$');
