//! The OpenAPI 3.1 document of the API, written by hand next to the routes it describes (tests
//! check that every served route is in it). It also defines btar's lag metric names, which Aiven's
//! report leaves unnamed.

use axum::Json;
use serde_json::{Value, json};

pub async fn serve() -> Json<Value> {
    Json(document())
}

fn error_responses(codes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for code in codes {
        let description = match *code {
            "400" => {
                "Bad input: malformed JSON, unknown field, wrong type, unknown region, region rule"
            }
            "401" => "Missing bearer token",
            "403" => "Wrong bearer token",
            "404" => "No such service or copy job",
            "409" => {
                "Conflicts with the current state (24 h region-change rule, name taken, no agent here)"
            }
            _ => "Error",
        };
        out.insert(
            (*code).to_owned(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

/// A success answer (`code`) with its JSON schema, and the errors the route can give.
fn responses(code: &str, description: &str, schema: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    responses[code] = json!({
        "description": description,
        "content": {"application/json": {"schema": schema}}
    });
    responses
}

fn ok(description: &str, schema: Value, errors: &[&str]) -> Value {
    responses("200", description, schema, errors)
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `{"<key>": <schema>}`, the envelope most answers use.
fn wrapped(key: &str, inner: Value) -> Value {
    json!({"type": "object", "properties": {key: inner}})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn series(description: &str) -> Value {
    json!({
        "description": description,
        "type": "array",
        "items": {"type": "array", "prefixItems": [
            {"type": "integer", "description": "bucket start, Unix seconds"},
            {"type": "number"}
        ], "minItems": 2, "maxItems": 2}
    })
}

pub fn document() -> Value {
    let project = json!({"name": "project", "in": "path", "required": true,
        "description": "Accepted for Aiven compatibility, not stored (btar has one project)",
        "schema": {"type": "string"}});
    let service =
        json!({"name": "service", "in": "path", "required": true, "schema": {"type": "string"}});
    let query = |name: &str, description: &str, ty: &str| json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": ty}});
    let auth = ["400", "401", "403"];
    let auth_404 = ["400", "401", "403", "404"];
    let public = json!([]);
    let mut backup_responses = ok(
        "Committed (wait=true)",
        wrapped("backup", schema("BackupTaken")),
        &["401", "403", "404", "409"],
    );
    let console_types: serde_json::Map<String, Value> = super::console::CONTENT_TYPES
        .iter()
        .map(|t| ((*t).to_owned(), json!({"schema": {"type": "string"}})))
        .collect();
    backup_responses["202"] = json!({"description": "Started in the background",
        "content": {"application/json": {"schema": schema("Message")}}});

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "btar API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted backup to another region. Services after Aiven's service API \
                (`user_config.additional_backup_regions`, fork & restore, lag report), copy jobs after \
                AWS Backup's DescribeCopyJob. Errors are `{\"message\", \"errors\": [{\"message\", \"status\"}]}`."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/project/{project}/service": {
                "parameters": [project],
                "post": {
                    "summary": "Create a service, or fork one (user_config.service_to_fork_from)",
                    "description": "Regions: `cloud` and every `additional_backup_regions` entry must be configured; a destination differs from `cloud` and is on its provider unless `allow_cross_provider` is true. Enabling regions starts a first backup. A fork restores from the location in `cloud` (the source's home region = primary, one of its additional regions = secondary; a region without a copy is a 400) and answers when the fork runs.",
                    "requestBody": body(schema("ServiceCreate")),
                    "responses": responses("201", "Created", wrapped("service", schema("Service")), &["400", "401", "403", "409"])
                },
                "get": {
                    "summary": "List services",
                    "responses": ok("Live services", wrapped("services", array(schema("Service"))), &auth)
                }
            },
            "/v1/project/{project}/service/{service}": {
                "parameters": [project, service],
                "get": {"summary": "Get a service", "responses": ok("The service", wrapped("service", schema("Service")), &auth_404)},
                "put": {
                    "summary": "Update plan and/or user_config",
                    "description": "`user_config` is merged into the stored one key by key (`null` removes a key). `additional_backup_regions` may change once per 24 h (409 with `next_allowed_at`); `[]` disables copies and keeps existing secondary backups until their retention ends.",
                    "requestBody": body(schema("ServiceUpdate")),
                    "responses": ok("Updated", wrapped("service", schema("Service")), &["400", "401", "403", "404", "409"])
                },
                "delete": {"summary": "Delete a service (its backups stay until their retention ends)", "responses": ok("Deleted", schema("Message"), &auth_404)}
            },
            "/v1/project/{project}/service/{service}/backups": {
                "parameters": [project, service],
                "get": {"summary": "Backups with their state per location, and the PITR window per location", "responses": ok("Backups", schema("BackupsView"), &auth_404)},
                "post": {
                    "summary": "Take an on-demand primary backup",
                    "parameters": [query("wait", "true: answer 200 once committed; default: start in the background and answer 202", "boolean")],
                    "responses": backup_responses
                }
            },
            "/v1/project/{project}/service/{service}/backup_to_another_region/report": {
                "parameters": [project, service],
                "post": {
                    "summary": "Replication lag per destination region over a period",
                    "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["period"],
                        "properties": {"period": {"type": "string", "enum": ["hour", "day", "week", "month", "year"]}}})),
                    "responses": ok("Lag report", schema("LagReport"), &auth_404)
                }
            },
            "/v1/copy-jobs": {
                "get": {
                    "summary": "List copy jobs, newest first (AWS ListCopyJobs)",
                    "parameters": [
                        query("state", "CREATED, RUNNING, COMPLETED, FAILED or PARTIAL", "string"),
                        query("created_after", "RFC 3339 time", "string"),
                        query("created_before", "RFC 3339 time", "string"),
                        query("completed_after", "RFC 3339 time (AWS ByCompleteAfter)", "string"),
                        query("completed_before", "RFC 3339 time (AWS ByCompleteBefore)", "string"),
                        query("destination_region", "Destination region name", "string"),
                        query("service", "Service name", "string"),
                        query("limit", "At most this many per page (default and maximum 1000)", "integer"),
                        query("next_token", "The next_token of the previous page (AWS NextToken)", "string")
                    ],
                    "responses": ok("Copy jobs, newest first; next_token when more follow",
                        json!({"type": "object", "properties": {
                            "copy_jobs": array(schema("CopyJob")),
                            "next_token": {"type": "string", "description": "Pass as next_token for the next page; absent on the last"}
                        }}), &auth)
                }
            },
            "/v1/copy-jobs/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "Describe a copy job (AWS DescribeCopyJob)", "responses": ok("The job", wrapped("copy_job", schema("CopyJob")), &auth_404)}
            },
            "/v1/events": {
                "get": {
                    "summary": "Events, newest first",
                    "parameters": [
                        query("service", "Only this service's events", "string"),
                        query("after_id", "Only events with a larger id (for polling)", "integer"),
                        query("limit", "At most this many (default 100, maximum 1000)", "integer")
                    ],
                    "responses": ok("Events", wrapped("events", array(schema("Event"))), &auth)
                }
            },
            "/v1/check": {
                "get": {
                    "summary": "Compliance check (AWS BKP-004): a recent copy in each additional region, a primary backup within its plan's interval, no hole in any location's log archive",
                    "parameters": [query("service", "Only this service (default: every service)", "string")],
                    "responses": ok("One result per service, rule and location", schema("CheckReport"), &auth_404)
                }
            },
            "/v1/cost": {
                "get": {
                    "summary": "Per service and location: backups, logical and stored bytes, objects, GB-hours over the period, bytes copied in; with [[price]] entries, money",
                    "parameters": [
                        query("service", "Only this service (default: every service)", "string"),
                        query("period", "hour, day, week, month (30 days, the default) or year", "string")
                    ],
                    "responses": ok("Cost per location", schema("CostReport"), &auth_404)
                }
            },
            "/v1/drills": {
                "get": {
                    "summary": "Recorded restore drills, newest first (AWS restore testing jobs)",
                    "parameters": [query("service", "Only this service's drills", "string")],
                    "responses": ok("Drills", wrapped("drills", array(schema("Drill"))), &auth)
                }
            },
            "/v1/clouds": {
                "get": {
                    "summary": "The regions configured here, with their provider (Aiven's cloud list): where a service may live and copy to",
                    "responses": ok("Regions", wrapped("clouds", array(schema("Cloud"))), &auth)
                }
            },
            "/v1/openapi.json": {
                "get": {"summary": "This document", "security": public, "responses": {"200": {"description": "OpenAPI 3.1 document"}}}
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics, computed from the catalog at scrape time",
                    "description": "btar_copy_jobs{state}, btar_copy_bytes_transferred_total{destination_region}, btar_backup_lag_seconds / btar_wal_lag_seconds / btar_bytes_pending / btar_latest_recoverable_timestamp_seconds {service,destination_region} (newest sample of the last hour), btar_backups / btar_backup_data_bytes / btar_last_backup_timestamp_seconds {service,region,role}, btar_services, btar_check_status {service,rule,region} (1 pass, 0 fail; the compliance check, rerun at most every 5 minutes) and btar_check_timestamp_seconds.",
                    "security": public,
                    "responses": {"200": {"description": "Text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness: the process serves requests", "security": public,
                    "responses": {"200": {"description": "Serving", "content": {"application/json": {"schema": schema("Probe")}}}}}
            },
            "/readyz": {
                "get": {"summary": "Readiness: the catalog answers as well", "security": public,
                    "responses": {
                        "200": {"description": "Ready", "content": {"application/json": {"schema": schema("Probe")}}},
                        "503": {"description": "The catalog does not answer", "content": {"application/json": {"schema": schema("Probe")}}}
                    }}
            },
            "/": {
                "get": {"summary": "Console (HTML); asks for the token and calls this API", "security": public,
                    "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}
            },
            "/console/{version}/{file}": {
                "parameters": [
                    {"name": "version", "in": "path", "required": true, "description": "Digest of the console's assets, as `/` names it (another one is served uncached)", "schema": {"type": "string"}},
                    {"name": "file", "in": "path", "required": true, "schema": {"type": "string"}}
                ],
                "get": {"summary": "A static asset of the console (script module, style sheet, icon)", "security": public,
                    "responses": {
                        "200": {"description": "The asset", "content": console_types},
                        "400": {"description": "A path that does not decode", "content": {"application/json": {"schema": schema("Error")}}},
                        "404": {"description": "No such asset", "content": {"application/json": {"schema": schema("Error")}}}
                    }}
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas()
        }
    })
}

/// Component schemas; split in functions to keep each `json!` within the macro recursion limit.
fn schemas() -> Value {
    let mut all = service_schemas();
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), backup_schemas()) {
        all.extend(more);
    }
    all
}

/// The backups list (Aiven's shape with btar's per-location status and expiry).
fn backup_schemas() -> Value {
    json!({
        "Probe": {"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["ok", "ready", "unavailable"]},
            "message": {"type": "string", "description": "Why the catalog does not answer"}
        }},
        "BackupsView": {"type": "object", "description": "Every backup kept in any location of the service (also after a region is removed or the service deleted), until retention removes it", "properties": {
            "deleted_at": {"type": "string", "format": "date-time", "description": "Set when the service was deleted"},
            "backups": {"type": "array", "items": {"type": "object", "properties": {
                "backup_name": {"type": "string"}, "backup_time": {"type": "string", "format": "date-time"},
                "data_size": {"type": "integer"}, "storage_location": {"type": "string", "description": "The home region (primary location)"},
                "status": {"type": "string", "description": "In the primary location: COMPLETED, EXPIRED (copies remain), DAMAGED or UNREACHABLE"},
                "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "When retention removes it from the primary location; null without a plan or for the newest backup of a location still receiving backups"},
                "reason": {"type": "string", "description": "Why it is DAMAGED or UNREACHABLE"},
                "incremental": {"type": "boolean"},
                "start_lsn": {"type": ["string", "null"]}, "stop_lsn": {"type": ["string", "null"]},
                "additional_regions": {"type": "array", "items": {"type": "object", "properties": {
                    "cloud": {"type": "string"}, "region": {"type": "string"},
                    "paused": {"type": "boolean", "description": "No new copies go here (region removed from additional_backup_regions, or service deleted)"},
                    "pause_reason": {"type": ["string", "null"]},
                    "status": {"type": "string", "description": "COMPLETED, PENDING, FAILED, NOT_COPIED, DAMAGED or UNREACHABLE"},
                    "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    "reason": {"type": "string"}
                }}}
            }}},
            "pitr": {"type": "object", "properties": {
                "primary_region": schema("PitrRange"),
                "additional_regions": {"type": "array", "items": schema("PitrRange")}
            }}
        }},
        "PitrRange": {"type": "object", "properties": {
            "cloud": {"type": "string"}, "region": {"type": "string"},
            "pitr_range_start": {"type": ["string", "null"], "format": "date-time"},
            "pitr_range_end": {"type": ["string", "null"], "format": "date-time"},
            "paused": {"type": "boolean"}, "pause_reason": {"type": ["string", "null"]},
            "error": {"type": "string", "description": "Set when the location could not be read"}
        }}
    })
}

fn service_schemas() -> Value {
    json!({
        "Error": {"type": "object", "required": ["message", "errors"], "properties": {
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"message": {"type": "string"}, "status": {"type": "integer"}}}},
            "next_allowed_at": {"type": "string", "format": "date-time", "description": "On a 409 from the 24 h rule: when additional_backup_regions may change next"}
        }},
        "Message": {"type": "object", "properties": {"message": {"type": "string"}}},
        "UserConfig": {"type": "object", "properties": {
            "additional_backup_regions": {"type": "array", "items": {"type": "string"}, "description": "Destination regions of backup copies; [] disables"},
            "allow_cross_provider": {"type": "boolean", "description": "Allow destinations on another provider than the home region"},
            "service_to_fork_from": {"type": "string", "description": "Create only: fork this service"},
            "project_to_fork_from": {"type": "string", "description": "Create only: accepted, ignored (single project)"},
            "recovery_target_time": {"type": "string", "format": "date-time", "description": "Create only: fork to this point (default: latest)"},
            "fork_data_dir": {"type": "string", "description": "Create only: the fork's data directory on this host"},
            "fork_port": {"type": "integer", "description": "Create only: the fork's PostgreSQL port"},
            "btar_pg": {"type": "object", "readOnly": true, "description": "Agent settings btar keeps for a fork (password masked)"}
        }},
        "ServiceCreate": {"type": "object", "additionalProperties": false, "required": ["service_name", "cloud"], "properties": {
            "service_name": {"type": "string", "description": "Also accepted as `name`"},
            "service_type": {"type": "string", "enum": ["pg", "mysql", ""]},
            "cloud": {"type": "string", "description": "Home region (for a fork: the location to restore from)"},
            "plan": {"type": "string", "description": "A configured plan, or empty"},
            "user_config": schema("UserConfig")
        }},
        "ServiceUpdate": {"type": "object", "additionalProperties": false, "properties": {
            "plan": {"type": "string"},
            "user_config": schema("UserConfig")
        }},
        "Service": {"type": "object", "properties": {
            "service_name": {"type": "string"}, "service_type": {"type": "string"},
            "cloud_name": {"type": "string"}, "plan": {"type": "string"},
            "user_config": schema("UserConfig"),
            "create_time": {"type": "string", "format": "date-time"},
            "update_time": {"type": "string", "format": "date-time"},
            "next_regions_change_at": {"type": ["string", "null"], "format": "date-time"},
            "state": {"type": "string", "enum": ["RUNNING"]},
            "fork": {"type": "object", "description": "On a fork's creation: what was restored"}
        }},
        "BackupTaken": {"type": "object", "properties": {
            "service": {"type": "string"}, "region": {"type": "string"}, "backup_name": {"type": "string"},
            "logical_bytes": {"type": "integer"}, "copy_job_ids": {"type": "array", "items": {"type": "string"}}
        }},
        "LagReport": {"type": "object", "properties": {
            "service": {"type": "string"},
            "period": {"type": "string"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "step_seconds": {"type": "integer", "description": "Bucket width; 60 buckets per period"},
            "metrics": {"type": "object", "description": "Keyed by destination region", "additionalProperties": schema("LagSeries")},
            "streamed": {"type": "array", "description": "Where the WAL streamer (`btar log-stream`) last reported each location: now, not over the period; empty without a streamer", "items": schema("StreamStatus")}
        }},
        "StreamStatus": {"type": "object", "properties": {
            "service": {"type": "string"}, "region": {"type": "string"},
            "primary": {"type": "boolean", "description": "The home region: the server is told WAL is flushed once it is stored here"},
            "position": {"type": "string", "description": "Log position the location holds (archive plus streamed tail), e.g. a PostgreSQL LSN"},
            "server_position": {"type": "string", "description": "The server's flushed WAL position the streamer last knew"},
            "bytes_behind": {"type": "integer"},
            "seconds_behind": {"type": "number", "description": "How long the oldest WAL the location lacks has been waiting; 0 when current"},
            "slot_retained_bytes": {"type": ["integer", "null"], "description": "WAL the server keeps for the streamer's replication slot"},
            "error": {"type": ["string", "null"], "description": "Why the last store into this location failed, if it did"},
            "updated_at": {"type": "string", "format": "date-time"}
        }},
        "LagSeries": {"type": "object", "description": "A bucket without samples has no point.", "properties": {
            "backup_lag_seconds": series("Worst backup lag in the bucket: secondary completion minus primary completion of a backup copy"),
            "wal_lag_seconds": series("Worst WAL lag in the bucket: time from a segment being durable in the primary to being durable in this region"),
            "bytes_pending": series("Largest backlog in the bucket: bytes archived in the primary and not yet in this region"),
            "latest_recoverable_time": series("Latest point (Unix seconds) a restore from this region could reach")
        }},
        "CopyJob": {"type": "object", "properties": {
            "copy_job_id": {"type": "string"}, "service": {"type": "string"},
            "kind": {"type": "string", "enum": ["backup"], "description": "always `backup`: log files are shipped continuously, not by jobs"},
            "source_region": {"type": "string"}, "destination_region": {"type": "string"},
            "backup_name": {"type": "string", "description": "Source recovery point (for logs: the range)"},
            "destination_backup_name": {"type": "string"},
            "state": {"type": "string", "enum": ["CREATED", "RUNNING", "COMPLETED", "FAILED", "PARTIAL"]},
            "status_message": {"type": ["string", "null"]},
            "creation_date": {"type": "string", "format": "date-time"},
            "start_date": {"type": ["string", "null"], "format": "date-time"},
            "completion_date": {"type": ["string", "null"], "format": "date-time"},
            "backup_size_in_bytes": {"type": ["integer", "null"]},
            "bytes_transferred": {"type": "integer"},
            "chunks_total": {"type": ["integer", "null"]}, "chunks_copied": {"type": "integer"},
            "attempts": {"type": "integer"},
            "created_by": {"type": "string", "enum": ["plan", "on-demand", "event"]},
            "created_by_backup_job_id": {"type": ["string", "null"]},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time", "description": "When a retryable failure is attempted again within this job"},
            "retry_of": {"type": ["string", "null"], "description": "The final FAILED job this one retries (a failed job is never reopened)"}
        }},
        "Drill": {"type": "object", "required": ["service", "state", "started_at", "duration_seconds", "message"], "properties": {
            "service": {"type": "string"}, "region": {"type": ["string", "null"]}, "backup": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": ["SUCCESSFUL", "FAILED", "TIMED_OUT"]},
            "started_at": {"type": "string", "format": "date-time"},
            "duration_seconds": {"type": "number"},
            "reached": {},
            "message": {"type": "string"}
        }},
        "CostReport": {"type": "object", "required": ["period", "from", "to", "lines"], "properties": {
            "period": {"type": "string"},
            "from": {"type": "string", "format": "date-time"},
            "to": {"type": "string", "format": "date-time"},
            "total_price": {"type": "number"},
            "lines": {"type": "array", "items": {"type": "object",
                "required": ["service", "region", "role", "backups", "logical_bytes", "stored_bytes", "objects", "gb_hours", "copy_jobs", "copy_bytes"],
                "properties": {
                    "service": {"type": "string"}, "region": {"type": "string"},
                    "role": {"type": "string", "enum": ["primary", "secondary"]},
                    "backups": {"type": "integer"}, "logical_bytes": {"type": "integer"},
                    "stored_bytes": {"type": "integer"}, "objects": {"type": "integer"},
                    "gb_hours": {"type": "number"}, "copy_jobs": {"type": "integer"},
                    "copy_bytes": {"type": "integer"}, "price": {"type": "number"}
                }}}
        }},
        "CheckReport": {"type": "object", "required": ["checked_at", "results", "failed"], "properties": {
            "checked_at": {"type": "string", "format": "date-time"},
            "failed": {"type": "integer", "minimum": 0},
            "results": {"type": "array", "items": {"type": "object", "required": ["service", "rule", "region", "status", "detail"], "properties": {
                "service": {"type": "string"},
                "rule": {"type": "string", "enum": ["copy_recent", "backup_fresh", "log_gap_free"]},
                "region": {"type": "string"},
                "status": {"type": "string", "enum": ["PASS", "FAIL"]},
                "detail": {"type": "string"}
            }}}
        }},
        "Cloud": {"type": "object", "required": ["cloud_name", "provider"], "properties": {
            "cloud_name": {"type": "string", "description": "Region name, as `cloud` and `additional_backup_regions` take it"},
            "provider": {"type": "string", "description": "aws, google, azure, local or an S3-compatible vendor; copies stay on the home region's provider unless allow_cross_provider"}
        }},
        "Event": {"type": "object", "properties": {
            "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
            "service": {"type": ["string", "null"]}, "kind": {"type": "string"}, "message": {"type": "string"}
        }}
    })
}
