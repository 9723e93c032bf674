-- How an endpoint's requests are signed: `hmac` (Standard Webhooks v1) or
-- `ed25519` (v1a, asymmetric).
ALTER TABLE webhook_endpoints ADD COLUMN signature TEXT NOT NULL DEFAULT 'hmac';
