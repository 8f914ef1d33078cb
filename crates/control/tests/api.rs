//! The REST API over real HTTP: a server on 127.0.0.1:0 with a SQLite catalog (and the same scenario
//! on a throwaway PostgreSQL database), regions built in code. No database service is needed: the
//! services created here have no agent settings, so the backups their region changes start fail in
//! the background with "no agent", which is expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use btar_catalog::{Catalog, CreatedBy, JobKind, LagSample, NewCopyJob};
use btar_control::{Config, ControlPlane, PlanConfig};
use btar_region::CancellationToken;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-5f1c2a9e";
const P: &str = "/v1/project/demo";

struct Server {
    base: String,
    cp: ControlPlane,
    http: reqwest::Client,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Two filesystem regions on provider `local` and one on provider `aws` (never opened here).
fn config(dir: &Path) -> Config {
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut aws = btar_testkit::memory_region("aws-x");
    aws.provider = "aws".into();
    Config {
        regions: vec![
            btar_testkit::fs_region("local-a", &a),
            btar_testkit::fs_region("local-b", &b),
            aws,
        ],
        plans: vec![PlanConfig {
            name: "daily".into(),
            schedule: "0 3 * * *".into(),
            start_window_minutes: 60,
            retention_days: 7,
            secondary_retention_days: 14,
        }],
        ..Default::default()
    }
}

async fn start(catalog: Catalog, dir: tempfile::TempDir) -> Server {
    let cancel = CancellationToken::new();
    let cp = ControlPlane::with_catalog(
        config(dir.path()),
        btar_engine::Engines::default().with(std::sync::Arc::new(btar_engine_pg::PgEngine)),
        catalog,
        cancel.clone(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(btar_control::api::serve(
        cp.clone(),
        listener,
        TOKEN.to_owned(),
    ));
    Server {
        base,
        cp,
        http: reqwest::Client::new(),
        cancel,
        task,
        _dir: dir,
    }
}

impl Server {
    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// An authenticated call; the answer parsed as JSON (a string if it is not JSON).
    async fn call(&self, method: Method, path: &str, body: Option<String>) -> (StatusCode, Value) {
        let (status, text) = self.raw(method, path, body, Some(TOKEN)).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, path, Some(body.to_string())).await
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops on cancel")
            .unwrap()
            .unwrap();
    }
}

/// Bad input answers 400 in Aiven's error shape, with a message that names `needle`.
#[track_caller]
fn assert_bad(answer: &(StatusCode, Value), needle: &str) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_error_shape(answer, needle);
}

#[track_caller]
fn assert_error_shape(answer: &(StatusCode, Value), needle: &str) {
    let message = answer.1["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "`{needle}` not in {answer:?}");
    assert_eq!(answer.1["errors"][0]["message"].as_str(), Some(message));
    // btar's code for the failure, as `--output json` prints it.
    let code = answer.1["code"].as_str().unwrap_or_default();
    let fits: &[&str] = match answer.0.as_u16() {
        400 => &["invalid", "config"],
        401 | 403 => &["unauthorized"],
        404 => &["not_found"],
        405 => &["method_not_allowed"],
        409 => &["conflict", "no_agent"],
        _ => &["unavailable", "location_vanished", "failed"],
    };
    assert!(fits.contains(&code), "code `{code}` for {answer:?}");
}

async fn scenario(s: Server) {
    auth(&s).await;
    public_routes(&s).await;
    services(&s).await;
    report(&s).await;
    copy_jobs(&s).await;
    events_backups_and_metrics(&s).await;
    copy_job_lifecycle(&s).await;
    s.stop().await;
}

async fn auth(s: &Server) {
    let path = format!("{P}/service");
    let (status, body) = s.raw(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("bearer token"), "{body}");
    let (status, _) = s.raw(Method::GET, &path, None, Some("wrong")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .raw(Method::GET, &path, None, Some(&format!("{TOKEN}x")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = s
        .http
        .get(format!("{}{path}", s.base))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer"
    );
    // Every protected route refuses without the token, even before looking at its input.
    for (method, path) in [
        (Method::POST, format!("{P}/service")),
        (Method::PUT, format!("{P}/service/x")),
        (Method::DELETE, format!("{P}/service/x")),
        (Method::GET, format!("{P}/service/x/backups")),
        (Method::POST, format!("{P}/service/x/backups")),
        (
            Method::POST,
            format!("{P}/service/x/backup_to_another_region/report"),
        ),
        (Method::GET, "/v1/copy-jobs".into()),
        (Method::GET, "/v1/copy-jobs/x".into()),
        (Method::GET, "/v1/events".into()),
        (Method::GET, "/v1/check".into()),
        (Method::GET, "/v1/cost".into()),
        (Method::GET, "/v1/drills".into()),
        (Method::GET, "/v1/clouds".into()),
    ] {
        let (status, _) = s.raw(method.clone(), &path, Some("{".into()), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let (status, _) = s.get(&path).await;
    assert_eq!(status, StatusCode::OK);
}

/// Whether `schema` (after `$ref`s, into its properties, items and `allOf` parts, a few levels deep)
/// gives an example.
fn has_example(doc: &Value, schema: &Value, depth: usize) -> bool {
    if depth > 6 {
        return false;
    }
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return has_example(doc, &doc["components"]["schemas"][name], depth + 1);
    }
    if schema.get("examples").is_some() || schema.get("example").is_some() {
        return true;
    }
    let parts = schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
        .chain(schema.get("items"))
        .chain(
            ["allOf", "oneOf"]
                .iter()
                .flat_map(|k| schema[*k].as_array().into_iter().flatten()),
        );
    parts.into_iter().any(|p| has_example(doc, p, depth + 1))
}

async fn public_routes(s: &Server) {
    let (status, text) = s.raw(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/project/{project}/service",
        "/v1/project/{project}/service/{service}",
        "/v1/project/{project}/service/{service}/backups",
        "/v1/project/{project}/service/{service}/backup_to_another_region/report",
        "/v1/copy-jobs",
        "/v1/copy-jobs/{id}",
        "/v1/events",
        "/v1/openapi.json",
        "/metrics",
        "/",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from the OpenAPI"
        );
    }
    for route in btar_control::api::ROUTES {
        assert!(
            paths.contains_key(*route),
            "{route} missing from the OpenAPI"
        );
    }
    for route in paths.keys() {
        assert!(
            btar_control::api::ROUTES.contains(&route.as_str()),
            "{route} documented but not served"
        );
    }
    // For client generators: every operation has a unique operationId and a tag; request bodies
    // and JSON answers carry examples (on the object, or on the objects it holds).
    let mut ids = std::collections::BTreeSet::new();
    for (route, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {route}: no operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {route}: no tag"
            );
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                assert!(
                    has_example(&doc, schema, 0),
                    "{method} {route}: request without example"
                );
            }
            for (code, answer) in op["responses"].as_object().unwrap() {
                let schema = &answer["content"]["application/json"]["schema"];
                if code.starts_with('2') && !schema.is_null() && route != "/v1/openapi.json" {
                    assert!(
                        has_example(&doc, schema, 0),
                        "{method} {route} {code}: answer without example"
                    );
                }
            }
        }
    }
    let series = doc["components"]["schemas"]["LagSeries"]["properties"]
        .as_object()
        .unwrap();
    for name in [
        "backup_lag_seconds",
        "wal_lag_seconds",
        "bytes_pending",
        "latest_recoverable_time",
    ] {
        assert!(series.contains_key(name), "{name}");
    }

    // A wrong method gets a JSON error naming the route, not an empty 405.
    let (code, text) = s.raw(Method::PATCH, "/metrics", None, None).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("/metrics"),
        "{text}"
    );

    // The probes need no token; the catalog answers, so the server is ready.
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let (code, text) = s.raw(Method::GET, path, None, None).await;
        assert_eq!(code, StatusCode::OK, "{path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], status, "{path}: {text}");
    }

    let (status, text) = s.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE btar_copy_jobs gauge"), "{text}");

    console(s).await;

    let answer = s.get("/v1/nothing-here").await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND);
    assert_error_shape(&answer, "/v1/nothing-here");
}

/// The console: a page whose assets are all served, with their types, caching and a CSP that
/// allows no inline code; and the region list it offers destinations from.
async fn console(s: &Server) {
    let header = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let resp = s.http.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "content-type").starts_with("text/html"));
    assert_eq!(header(&resp, "cache-control"), "no-cache");
    let csp = header(&resp, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    let page = resp.text().await.unwrap();
    let assets: Vec<&str> = page
        .split('"')
        .filter(|a| a.starts_with("/console/"))
        .collect();
    assert!(assets.len() >= 4, "{page}");
    for path in assets {
        let resp = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ty = header(&resp, "content-type");
        let want = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset {other:?}"),
        };
        assert!(ty.starts_with(want), "{path}: {ty}");
        assert!(
            header(&resp, "cache-control").contains("immutable"),
            "{path}"
        );
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    }
    // An asset under an older version is still served (a tab open across an upgrade), uncached.
    let resp = s
        .http
        .get(format!("{}/console/0/app.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "cache-control"), "no-cache");
    let answer = s.get("/console/0/nothing.js").await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND);
    assert_error_shape(&answer, "nothing.js");

    let (status, _) = s.raw(Method::GET, "/v1/clouds", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = s.get("/v1/clouds").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["clouds"],
        json!([
            {"cloud_name": "local-a", "provider": "local"},
            {"cloud_name": "local-b", "provider": "local"},
            {"cloud_name": "aws-x", "provider": "aws"}
        ])
    );
}

async fn services(s: &Server) {
    let create =
        |body: Value| async move { s.send(Method::POST, &format!("{P}/service"), body).await };

    let (status, body) =
        create(json!({"service_name": "svc1", "service_type": "pg", "cloud": "local-a"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let svc = &body["service"];
    assert_eq!(svc["service_name"], "svc1");
    assert_eq!(svc["cloud_name"], "local-a");
    assert_eq!(svc["service_type"], "pg");
    assert_eq!(svc["state"], "RUNNING");
    assert!(svc["next_regions_change_at"].is_null());
    assert!(svc["create_time"].is_string());

    let answer = create(json!({"service_name": "svc1", "cloud": "local-a"})).await;
    assert_eq!(answer.0, StatusCode::CONFLICT, "{answer:?}");
    assert_error_shape(&answer, "svc1");

    // Malformed input of every kind is a 400 with a message.
    let raw = s
        .call(
            Method::POST,
            &format!("{P}/service"),
            Some(r#"{"service_name": "#.into()),
        )
        .await;
    assert_bad(&raw, "");
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "local-a", "bogus": 1})).await,
        "bogus",
    );
    assert_bad(
        &create(json!({"service_name": 5, "cloud": "local-a"})).await,
        "service_name",
    );
    assert_bad(&create(json!({"cloud": "local-a"})).await, "service_name");
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "nowhere"})).await,
        "local-b",
    );
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "Bad_Region"})).await,
        "Bad_Region",
    );
    assert_bad(
        &create(json!({"service_name": "bad name", "cloud": "local-a"})).await,
        "bad name",
    );
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "local-a", "service_type": "oracle"})).await,
        "oracle",
    );
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "local-a", "plan": "hourly"})).await,
        "hourly",
    );
    let regions = |r: Value| json!({"service_name": "x", "cloud": "local-a", "user_config": {"additional_backup_regions": r}});
    assert_bad(&create(regions(json!(["nowhere"]))).await, "nowhere");
    assert_bad(&create(regions(json!(["local-a"]))).await, "home region");
    assert_bad(
        &create(regions(json!(["aws-x"]))).await,
        "allow_cross_provider",
    );
    assert_bad(
        &create(regions(json!(["local-b", "local-b"]))).await,
        "twice",
    );
    assert_bad(&create(regions(json!("local-b"))).await, "list");
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "local-a", "user_config": {"additional_backup_region": ["local-b"]}})).await,
        "additional_backup_region",
    );
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "local-a", "user_config": []})).await,
        "object",
    );
    assert_bad(
        &create(json!({"service_name": "x", "cloud": "local-a", "user_config": {"recovery_target_time": "2025-01-01T00:00:00Z"}})).await,
        "service_to_fork_from",
    );
    let answer = s
        .send(
            Method::POST,
            "/v1/project/bad%20project/service",
            json!({"service_name": "x", "cloud": "local-a"}),
        )
        .await;
    assert_bad(&answer, "project");

    // Forks: the source and the location are checked before anything is restored.
    let fork = |from: &str, cloud: &str, extra: Value| {
        let mut config = json!({"service_to_fork_from": from});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        create(json!({"service_name": "fork1", "cloud": cloud, "user_config": config}))
    };
    assert_bad(&fork("nope", "local-b", json!({})).await, "nope");
    assert_bad(
        &fork(
            "svc1",
            "local-b",
            json!({"recovery_target_time": "yesterday"}),
        )
        .await,
        "yesterday",
    );
    assert_bad(
        &fork("svc1", "local-b", json!({"fork_port": 70000})).await,
        "fork_port",
    );
    // local-b holds no copy of svc1: Aiven answers 400.
    assert_bad(&fork("svc1", "local-b", json!({})).await, "no");

    // Cross-provider with the opt-out flag; a plan; `name` instead of `service_name`.
    let (status, body) = create(json!({
        "name": "svc2", "cloud": "local-a", "plan": "daily",
        "user_config": {"additional_backup_regions": ["aws-x"], "allow_cross_provider": true}
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["service"]["plan"], "daily");
    assert_eq!(
        body["service"]["user_config"]["additional_backup_regions"],
        json!(["aws-x"])
    );

    // Enable, then a second change within 24 h is a 409 naming the next allowed time.
    let svc1 = format!("{P}/service/svc1");
    let (status, body) = s
        .send(
            Method::PUT,
            &svc1,
            json!({"user_config": {"additional_backup_regions": ["local-b"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["service"]["user_config"]["additional_backup_regions"],
        json!(["local-b"])
    );
    let next = body["service"]["next_regions_change_at"]
        .as_str()
        .expect("next change time set")
        .to_owned();
    let answer = s
        .send(
            Method::PUT,
            &svc1,
            json!({"user_config": {"additional_backup_regions": []}}),
        )
        .await;
    assert_eq!(answer.0, StatusCode::CONFLICT, "{answer:?}");
    assert_error_shape(&answer, "24 h");
    let allowed = answer.1["next_allowed_at"].as_str().unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(allowed).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&next).unwrap()
    );

    // Other changes merge into user_config and keep the regions.
    let (status, body) = s
        .send(
            Method::PUT,
            &svc1,
            json!({"plan": "daily", "user_config": {"allow_cross_provider": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["service"]["plan"], "daily");
    assert_eq!(
        body["service"]["user_config"],
        json!({"additional_backup_regions": ["local-b"], "allow_cross_provider": false})
    );
    assert_bad(
        &s.send(Method::PUT, &svc1, json!({"plan": "nope"})).await,
        "nope",
    );
    assert_bad(
        &s.send(Method::PUT, &svc1, json!({"powered": true})).await,
        "powered",
    );
    assert_bad(
        &s.call(Method::PUT, &svc1, Some("not json".into())).await,
        "",
    );
    let answer = s
        .send(
            Method::PUT,
            &format!("{P}/service/ghost"),
            json!({"plan": ""}),
        )
        .await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{answer:?}");

    let (status, body) = s.get(&svc1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["service"]["service_name"], "svc1");
    assert_eq!(
        s.get(&format!("{P}/service/ghost")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_bad(&s.get(&format!("{P}/service/bad%20name")).await, "service");

    let (status, body) = s.get(&format!("{P}/service")).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["service_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["svc1", "svc2"]);

    // Deleting keeps the backups; the name is gone from the API.
    let (status, body) = create(json!({"service_name": "gone", "cloud": "local-b"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let gone = format!("{P}/service/gone");
    assert_eq!(s.call(Method::DELETE, &gone, None).await.0, StatusCode::OK);
    assert_eq!(s.get(&gone).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.call(Method::DELETE, &gone, None).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn report(s: &Server) {
    let path = format!("{P}/service/svc1/backup_to_another_region/report");
    assert_bad(
        &s.send(Method::POST, &path, json!({"period": "decade"}))
            .await,
        "decade",
    );
    assert_bad(&s.send(Method::POST, &path, json!({})).await, "period");
    assert_bad(
        &s.send(Method::POST, &path, json!({"period": "day", "x": 1}))
            .await,
        "x",
    );
    let answer = s
        .send(
            Method::POST,
            &format!("{P}/service/ghost/backup_to_another_region/report"),
            json!({"period": "day"}),
        )
        .await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{answer:?}");

    // An enabled region shows even before it has samples.
    let (status, body) = s.send(Method::POST, &path, json!({"period": "day"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["period"], "day");
    assert_eq!(body["step_seconds"], 1440);
    assert!(body["start"].is_string() && body["end"].is_string());
    assert_eq!(body["metrics"]["local-b"]["backup_lag_seconds"], json!([]));

    let now = s.cp.catalog().now();
    s.cp.catalog()
        .record_lag_sample(&LagSample {
            service: "svc1".into(),
            destination_region: "local-b".into(),
            sampled_at: now,
            backup_lag_seconds: Some(12.5),
            wal_lag_seconds: Some(1.5),
            bytes_pending: Some(4096),
            latest_recoverable_time: Some(now),
        })
        .await
        .unwrap();
    let (status, body) = s.send(Method::POST, &path, json!({"period": "HOUR"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let series = &body["metrics"]["local-b"];
    assert_eq!(series["backup_lag_seconds"][0][1], 12.5);
    assert_eq!(series["wal_lag_seconds"][0][1], 1.5);
    assert_eq!(series["bytes_pending"][0][1], 4096.0);
    assert_eq!(
        series["latest_recoverable_time"][0][1],
        now.timestamp() as f64
    );
    assert!(series["backup_lag_seconds"][0][0].is_i64());
}

async fn copy_jobs(s: &Server) {
    let catalog = s.cp.catalog();
    let job = |service: &str, destination: &str, backup: &str| NewCopyJob {
        service: service.into(),
        kind: JobKind::Backup,
        source_region: "local-a".into(),
        destination_region: destination.into(),
        backup_name: backup.into(),
        destination_backup_name: None,
        created_by: CreatedBy::Plan,
        created_by_backup_job_id: None,
        backup_size_in_bytes: Some(1000),
    };
    let (first, _) = catalog
        .create_copy_job(&job("svc1", "local-b", "b1"))
        .await
        .unwrap();
    catalog
        .create_copy_job(&job("svc1", "local-b", "b2"))
        .await
        .unwrap();
    catalog
        .create_copy_job(&job("svc2", "aws-x", "b1"))
        .await
        .unwrap();

    let count = |query: &str| {
        let path = format!("/v1/copy-jobs{query}");
        async move {
            let (status, body) = s.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body["copy_jobs"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("").await, 3);
    assert_eq!(count("?destination_region=aws-x").await, 1);
    assert_eq!(count("?service=svc1").await, 2);
    assert_eq!(count("?service=svc1&destination_region=aws-x").await, 0);
    assert_eq!(count("?state=CREATED").await, 3);
    assert_eq!(count("?state=completed").await, 0);
    assert_eq!(count("?created_after=2000-01-01T00:00:00Z").await, 3);
    assert_eq!(count("?created_after=2999-01-01T00:00:00Z").await, 0);
    assert_eq!(count("?created_before=2000-01-01T00:00:00Z").await, 0);
    assert_eq!(count("?limit=1&state=").await, 1);
    assert_eq!(
        count("?completed_after=2000-01-01T00:00:00Z").await,
        0,
        "none completed"
    );
    assert_eq!(count("?completed_before=2999-01-01T00:00:00Z").await, 0);

    // Paging (AWS NextToken): pages of 2 then 1, newest first, every job once.
    let (status, page1) = s.get("/v1/copy-jobs?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    let token = page1["next_token"].as_str().unwrap().to_string();
    let (status, page2) = s
        .get(&format!("/v1/copy-jobs?limit=2&next_token={token}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page2}");
    assert!(page2.get("next_token").is_none(), "{page2}");
    let ids: Vec<String> = [&page1, &page2]
        .iter()
        .flat_map(|p| p["copy_jobs"].as_array().unwrap().clone())
        .map(|j| j["copy_job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{page1} {page2}");
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3
    );
    let (_, all) = s.get("/v1/copy-jobs").await;
    assert!(all.get("next_token").is_none(), "{all}");
    assert_bad(&s.get("/v1/copy-jobs?next_token=zz").await, "next_token");
    assert_bad(&s.get("/v1/copy-jobs?next_token=2e2e").await, "next_token");
    assert_bad(&s.get("/v1/copy-jobs?state=PAUSED").await, "PAUSED");
    assert_bad(
        &s.get("/v1/copy-jobs?created_after=yesterday").await,
        "yesterday",
    );
    assert_bad(&s.get("/v1/copy-jobs?limit=many").await, "");
    assert_bad(
        &s.get("/v1/copy-jobs?destination_region=Bad_R").await,
        "Bad_R",
    );
    assert_bad(&s.get("/v1/copy-jobs?colour=red").await, "colour");

    let (status, body) = s.get(&format!("/v1/copy-jobs/{}", first.copy_job_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let described = &body["copy_job"];
    assert_eq!(described["copy_job_id"], first.copy_job_id.as_str());
    assert_eq!(described["source_region"], "local-a");
    assert_eq!(described["destination_region"], "local-b");
    assert_eq!(described["backup_name"], "b1");
    assert_eq!(described["destination_backup_name"], "b1");
    assert_eq!(described["state"], "CREATED");
    assert_eq!(described["backup_size_in_bytes"], 1000);
    assert_eq!(described["created_by"], "plan");
    assert!(described["creation_date"].is_string());

    let answer = s.get("/v1/copy-jobs/unknown").await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{answer:?}");
    assert_error_shape(&answer, "unknown");

    // AWS's filter names (ByCreatedAfter… in snake case) select the same jobs.
    for (aws, ours) in [
        ("by_created_after", "created_after"),
        ("by_created_before", "created_before"),
        ("by_completed_after", "completed_after"),
        ("by_completed_before", "completed_before"),
    ] {
        for t in ["2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"] {
            assert_eq!(
                count(&format!("?{aws}={t}")).await,
                count(&format!("?{ours}={t}")).await,
                "{aws}={t}"
            );
        }
    }
}

/// destination_retention: the destination's lifecycle under the service's plan (daily keeps copies
/// 14 days); a job of a service without a plan has none. Last, as it adds a service and jobs.
async fn copy_job_lifecycle(s: &Server) {
    let catalog = s.cp.catalog();
    let job = |service: &str| NewCopyJob {
        service: service.into(),
        kind: JobKind::Backup,
        source_region: "local-a".into(),
        destination_region: "local-b".into(),
        backup_name: "b9".into(),
        destination_backup_name: None,
        created_by: CreatedBy::Plan,
        created_by_backup_job_id: None,
        backup_size_in_bytes: None,
    };
    let (status, body) = s
        .send(
            Method::POST,
            &format!("{P}/service"),
            json!({"service_name": "kept", "cloud": "local-a", "plan": "daily"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (kept, _) = catalog.create_copy_job(&job("kept")).await.unwrap();
    let (_, body) = s.get(&format!("/v1/copy-jobs/{}", kept.copy_job_id)).await;
    assert_eq!(
        body["copy_job"]["destination_retention"],
        json!({"delete_after_days": 14}),
        "{body}"
    );
    let (ghost, _) = catalog.create_copy_job(&job("ghost")).await.unwrap();
    let (_, listed) = s.get("/v1/copy-jobs?service=ghost").await;
    let ghost_job = &listed["copy_jobs"][0];
    assert_eq!(ghost_job["copy_job_id"], ghost.copy_job_id.as_str());
    assert!(
        ghost_job
            .get("destination_retention")
            .is_some_and(Value::is_null),
        "{listed}"
    );
}

async fn events_backups_and_metrics(s: &Server) {
    let (status, body) = s.get("/v1/events?service=gone").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["service"] == "gone")
    );
    assert_bad(&s.get("/v1/events?limit=-1").await, "");

    // No agent for svc1 in this process: an on-demand backup is refused at once, either way.
    let backups = format!("{P}/service/svc1/backups");
    let answer = s.call(Method::POST, &backups, None).await;
    assert_eq!(answer.0, StatusCode::CONFLICT, "{answer:?}");
    assert_error_shape(&answer, "svc1");
    let answer = s
        .call(Method::POST, &format!("{backups}?wait=true"), None)
        .await;
    assert_eq!(answer.0, StatusCode::CONFLICT, "{answer:?}");
    assert_bad(
        &s.call(Method::POST, &format!("{backups}?now=1"), None)
            .await,
        "now",
    );
    let answer = s.get(&format!("{P}/service/ghost/backups")).await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{answer:?}");

    // The compliance check: svc1 has no backup anywhere yet, so its rules fail, each by region.
    let (status, body) = s.get("/v1/check?service=svc1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{body}");
    assert!(results.iter().all(|r| r["service"] == "svc1"), "{body}");
    assert!(
        results
            .iter()
            .any(|r| r["rule"] == "copy_recent" && r["status"] == "FAIL"),
        "{body}"
    );
    assert_eq!(
        body["failed"].as_u64().unwrap() as usize,
        results.iter().filter(|r| r["status"] == "FAIL").count()
    );
    let answer = s.get("/v1/check?service=ghost").await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{answer:?}");
    assert_bad(&s.get("/v1/check?service=../x").await, "");
    assert_bad(&s.get("/v1/check?bogus=1").await, "");
    let (status, body) = s.get("/v1/cost?service=svc1&period=day").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["period"], "day", "{body}");
    assert!(body["lines"].is_array(), "{body}");
    assert_bad(&s.get("/v1/cost?period=fortnight").await, "fortnight");
    let (status, body) = s.get("/v1/drills?service=svc1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["drills"].as_array().unwrap().is_empty(), "{body}");
    assert_bad(&s.get("/v1/drills?service=a/b").await, "");
    let answer = s.get("/v1/cost?service=ghost").await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{answer:?}");

    let (status, text) = s.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "btar_services 2",
        "btar_copy_jobs{state=\"CREATED\"} 3",
        "btar_copy_jobs{state=\"COMPLETED\"} 0",
        "btar_copy_bytes_transferred_total{destination_region=\"local-b\"} 0",
        "btar_backup_lag_seconds{service=\"svc1\",destination_region=\"local-b\"} 12.5",
        "btar_wal_lag_seconds{service=\"svc1\",destination_region=\"local-b\"} 1.5",
        "btar_bytes_pending{service=\"svc1\",destination_region=\"local-b\"} 4096",
        "# TYPE btar_backups gauge",
        "# TYPE btar_backup_data_bytes gauge",
        "# TYPE btar_check_status gauge",
        "btar_check_status{service=\"svc1\",rule=\"copy_recent\",region=\"local-b\"} 0",
        "# TYPE btar_copy_jobs_failed_total counter",
        "# TYPE btar_drill_last_successful gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` not in:\n{text}");
    }
    // The alert rules and the dashboard shipped in packaging/ use only metrics btar emits.
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    for file in ["prometheus/btar-alerts.yml", "grafana/btar-dashboard.json"] {
        let used = std::fs::read_to_string(packaging.join(file)).unwrap();
        let names: std::collections::BTreeSet<&str> = used
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("btar_"))
            .collect();
        assert!(!names.is_empty(), "{file}");
        for name in names {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# TYPE {name} "))),
                "{file} uses `{name}`, which /metrics does not emit"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.db").display()
    );
    let catalog = Catalog::open(&url).await.unwrap();
    scenario(start(catalog, dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres() {
    let db = btar_testkit::PgDatabase::create("api_test").await;
    let catalog = Catalog::open(&db.url).await.unwrap();
    scenario(start(catalog.clone(), tempfile::tempdir().unwrap()).await).await;
    catalog.close().await;
}
