-- An endpoint's client certificate and key (mTLS), sealed under the master key.
ALTER TABLE webhook_endpoints ADD COLUMN client_identity BLOB;
