-- Alert conditions that hold now (one row each, keyed by condition): an alert is sent when its row
-- is inserted and a "resolved" when it is deleted, so a condition alerts once until it clears.
CREATE TABLE alerts (
    key TEXT PRIMARY KEY,
    service TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    since BIGINT NOT NULL
);
