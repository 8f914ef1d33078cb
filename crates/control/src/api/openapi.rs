//! The OpenAPI 3.1 document of the API, derived by utoipa from the handlers' `#[utoipa::path]`
//! annotations and the types they exchange (tests check that every served route is in it and that
//! every operation has an id, a tag and examples). It also defines btar's lag metric names, which
//! Aiven's report leaves unnamed (`LagSeries`).

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Ref, ResponseBuilder, ResponsesBuilder, SecurityRequirement,
};
use utoipa::{Modify, OpenApi};

use super::{backups, check, clouds, copy_jobs, cost, drills, events, services};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "btar API",
        description = "Self-hosted backup to another region. Services after Aiven's service API \
            (`user_config.additional_backup_regions`, fork & restore, lag report), copy jobs after \
            AWS Backup's ListCopyJobs / DescribeCopyJob. Every `/v1` route but this document \
            needs `Authorization: Bearer <token>`. Errors are `{\"message\", \"errors\": \
            [{\"message\", \"status\"}]}`."
    ),
    paths(
        services::create, services::list, services::get, services::update, services::delete,
        backups::list, backups::create, backups::report,
        copy_jobs::list, copy_jobs::describe,
        events::list, check::run, cost::report, drills::list, clouds::list,
        serve, super::metrics, super::healthz, super::readyz,
    ),
    security(("bearer" = [])),
    modifiers(&Bearer, &Console),
    tags(
        (name = "services", description = "Services and their `user_config` (Aiven's service API), forks"),
        (name = "backups", description = "Backups per location, on-demand backups, the lag report"),
        (name = "copy-jobs", description = "Copies to additional backup regions (AWS Backup's copy jobs)"),
        (name = "events", description = "What happened"),
        (name = "check", description = "Compliance"),
        (name = "cost", description = "What each location holds and costs"),
        (name = "drills", description = "Restore drills"),
        (name = "operations", description = "Unauthenticated: this document, probes, metrics, console"),
    )
)]
struct ApiDoc;

/// The bearer scheme every protected route names, and the two answers every such route can give
/// (said once here rather than on each handler).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            // An operation without its own `security` is under the document's: the bearer token.
            for op in ops.into_iter().flatten().filter(|op| op.security.is_none()) {
                let answers = &mut op.responses.responses;
                answers.insert("401".into(), error("Missing bearer token").into());
                answers.insert("403".into(), error("Wrong bearer token").into());
            }
        }
    }
}

/// `/`, the console: its handler lives with the console, which this document does not reach into.
struct Console;

impl Modify for Console {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let page = ResponseBuilder::new().description("HTML page").content(
            "text/html",
            ContentBuilder::new()
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String),
                ))
                .build(),
        );
        let op = OperationBuilder::new()
            .operation_id(Some("console"))
            .tag("operations")
            .summary(Some(
                "Console (HTML); asks for the token and calls this API",
            ))
            .security(SecurityRequirement::default())
            .responses(ResponsesBuilder::new().response("200", page));
        doc.paths
            .paths
            .insert("/".into(), PathItem::new(HttpMethod::Get, op));

        // Its static assets, under a digest of them all so they can be cached for good.
        let mut body = ResponseBuilder::new().description("The asset");
        for t in super::console::CONTENT_TYPES {
            let text = ContentBuilder::new().schema(Some(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
            ));
            body = body.content(*t, text.build());
        }
        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        let param = |name: &str, description: &str| {
            utoipa::openapi::path::ParameterBuilder::new()
                .name(name)
                .parameter_in(utoipa::openapi::path::ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .description(Some(description))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String),
                ))
                .build()
        };
        let op = OperationBuilder::new()
            .operation_id(Some("consoleAsset"))
            .tag("operations")
            .summary(Some(
                "A static asset of the console (script module, style sheet, icon)",
            ))
            .security(SecurityRequirement::default())
            .parameter(param(
                "version",
                "Digest of the console's assets, as `/` names it (another one is served uncached)",
            ))
            .parameter(param("file", "The asset's file name"))
            .responses(
                ResponsesBuilder::new()
                    .response("200", body)
                    .response("400", error("A path that does not decode"))
                    .response("404", error("No such asset")),
            );
        doc.paths.paths.insert(
            "/console/{version}/{file}".into(),
            PathItem::new(HttpMethod::Get, op),
        );
    }
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        Value::Null
    })
});

/// The OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", tag = "operations",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = serde_json::Value)))]
pub async fn serve() -> Json<Value> {
    Json(document())
}

pub fn document() -> Value {
    DOCUMENT.clone()
}
