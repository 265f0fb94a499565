-- The trained classifier's versions as the deployment's training job stores them (`python -m
-- router.classifier.train --database`, the router-train CronJob): the model file's bytes
-- (arrays and a JSON header, never a pickle), its SHA-256 (checked on load), the metrics and
-- counts of its training. Every version is kept; the promoted one with the latest
-- `promoted_at` is the one every replica loads (at start and at each rules refresh), so a
-- cluster needs no shared volume and the image's own model file stays read-only.
CREATE TABLE classifier_models (
    number       integer PRIMARY KEY CHECK (number > 0),
    version      text NOT NULL UNIQUE CHECK (version = 'v' || number),
    model        bytea NOT NULL,
    sha256       text NOT NULL,
    metadata     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    promoted_at  timestamptz
);
CREATE INDEX classifier_models_promoted ON classifier_models (promoted_at DESC)
    WHERE promoted_at IS NOT NULL;
