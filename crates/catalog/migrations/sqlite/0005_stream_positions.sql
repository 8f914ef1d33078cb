-- Where each location's streamed log is, as its streamer last reported (one row per service and
-- region, replaced about once a second): the lag report's and /metrics' streamed position.
CREATE TABLE stream_positions (
    service TEXT NOT NULL,
    region TEXT NOT NULL,
    is_primary BIGINT NOT NULL,
    position TEXT NOT NULL,
    server_position TEXT NOT NULL,
    bytes_behind BIGINT NOT NULL,
    seconds_behind DOUBLE PRECISION NOT NULL,
    slot_retained_bytes BIGINT,
    error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (service, region)
);
