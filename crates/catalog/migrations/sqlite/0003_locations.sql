-- Every location btar created or opened, so that a location found missing later is known to have
-- vanished (an unmounted directory, a deleted bucket) rather than taken for one never created.
CREATE TABLE locations (
    service TEXT NOT NULL,
    region TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (service, region)
);
