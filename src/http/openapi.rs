//! The served OpenAPI document: what the handlers' annotations generate, completed once with what is
//! true of every operation.
//!
//! Some answers do not come from a handler but from what wraps all of them: the credential
//! extractors (400 for a malformed `Authorization`, 401, 403, 429 when sign-ins are throttled), the
//! JSON body extractor (400, 413, 415), the database and the request timeout (503), and `ApiError`,
//! which renders every error as `application/problem+json`. They depend on the shape of an operation
//! (does it take credentials? a JSON body?), not on the handler, so they are added here from that
//! shape rather than repeated, and sometimes forgotten, in each annotation. The same pass gives every
//! response a description, as OpenAPI requires.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Schema};

const PROBLEM_SCHEMA: &str = "#/components/schemas/Problem";
pub const PROBLEM_JSON: &str = "application/problem+json";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Answers every operation that takes credentials may give, whatever its handler does.
const AUTHENTICATED: [(u16, &str); 6] = [
    (
        400,
        "The `Authorization` header is malformed (or the request is otherwise not valid: `code` and `field` say what)",
    ),
    (401, "Credentials are missing or not valid"),
    (
        403,
        "The credentials' role may not do this, or a browser sent the request from another site",
    ),
    (
        429,
        "Too many failed sign-ins from this client for this user name: try again after `Retry-After` seconds",
    ),
    (500, "Herald hit an internal error; its log has the details"),
    (
        503,
        "The database is unavailable (`Retry-After` says when to try again), or the request took longer than HERALD_REQUEST_TIMEOUT",
    ),
];

/// Answers every operation that reads a JSON body may give.
const JSON_BODY: [(u16, &str); 3] = [
    (
        400,
        "The body is not valid JSON or does not match the schema: `code` and `field` say what",
    ),
    (413, "The body is larger than the configured limit"),
    (415, "The body is not sent as `Content-Type: application/json`"),
];

/// Completes the generated document (see the module's doc).
pub fn complete(mut doc: Value) -> Value {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                complete_operation(operation);
            }
        }
    }
    doc
}

fn complete_operation(operation: &mut Map<String, Value>) {
    let authenticated = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let json_body = operation
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|content| content.keys().any(|t| is_json(t)));
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else { return };
    for (status, response) in responses.iter_mut() {
        if let Some(response) = response.as_object_mut() {
            problems_as_problem_json(response);
            describe(status, response);
        }
    }
    let common = authenticated
        .then_some(&AUTHENTICATED[..])
        .into_iter()
        .chain(json_body.then_some(&JSON_BODY[..]));
    for (status, description) in common.flatten() {
        let response = responses
            .entry(status.to_string())
            .or_insert_with(|| json!({ "description": description }));
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let content = response.entry("content").or_insert_with(|| json!({})).as_object_mut();
        if let Some(content) = content {
            content
                .entry(PROBLEM_JSON)
                .or_insert_with(|| json!({ "schema": { "$ref": PROBLEM_SCHEMA } }));
        }
        if let Some(header) = header_of(*status) {
            let headers = response.entry("headers").or_insert_with(|| json!({})).as_object_mut();
            if let Some(headers) = headers {
                headers.entry(header.0).or_insert_with(|| header.1.clone());
            }
        }
    }
}

/// The schema `base` with rules between its fields, which field attributes cannot state: for each
/// group, at least one of its fields must be present, not null and, for an array, not empty.
/// (`a recipient in to, cc or bcc`, `a body in text or html`, `a name when creating`.)
pub fn requiring_one_of_each(base: &str, groups: &[&[(&str, Type)]]) -> RefOr<Schema> {
    with_rules(
        Ref::from_schema_name(base).into(),
        groups.iter().map(|group| {
            any_of(group.iter().map(|(field, kind)| {
                let present: RefOr<Schema> = match kind {
                    Type::Array => ArrayBuilder::new().min_items(Some(1)).into(),
                    other => ObjectBuilder::new().schema_type(other.clone()).into(),
                };
                ObjectBuilder::new().property(*field, present).required(*field).into()
            }))
        }),
    )
}

/// `base`, and every rule too (`allOf`).
pub fn with_rules(base: RefOr<Schema>, rules: impl IntoIterator<Item = RefOr<Schema>>) -> RefOr<Schema> {
    rules
        .into_iter()
        .fold(AllOfBuilder::new().item(base), AllOfBuilder::item)
        .into()
}

/// At least one of `alternatives` (`anyOf`).
pub fn any_of(alternatives: impl IntoIterator<Item = RefOr<Schema>>) -> RefOr<Schema> {
    alternatives
        .into_iter()
        .fold(AnyOfBuilder::new(), AnyOfBuilder::item)
        .into()
}

/// A rule: `field`, when present and meaningful, needs `needed` present and not empty. `idle` is
/// the schema of the values of `field` that mean "not set" (null, blank, empty).
pub fn needs(field: &str, idle: impl Into<RefOr<Schema>>, needed: &str) -> RefOr<Schema> {
    any_of([
        ObjectBuilder::new().property(field, idle).into(),
        ObjectBuilder::new()
            .property(
                needed,
                ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)),
            )
            .required(needed)
            .into(),
    ])
}

/// `schema`, or `null` (for a merge patch, which removes a setting with `null`).
pub fn nullable(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            let types = match std::mem::take(&mut object.schema_type) {
                SchemaType::Type(Type::Null) => SchemaType::Type(Type::Null),
                SchemaType::Type(t) => SchemaType::from_iter([t, Type::Null]),
                SchemaType::Array(mut types) => {
                    if !types.contains(&Type::Null) {
                        types.push(Type::Null);
                    }
                    SchemaType::Array(types)
                }
                SchemaType::AnyValue => SchemaType::AnyValue,
            };
            object.schema_type = types;
            RefOr::T(Schema::Object(object))
        }
        other => any_of([other, ObjectBuilder::new().schema_type(Type::Null).into()]),
    }
}

/// The object schema `schema` without the properties `names` (which the path of an update names
/// already), or `schema` unchanged when it is not an object.
pub fn without_properties(mut schema: RefOr<Schema>, names: &[&str]) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        for name in names {
            object.properties.remove(*name);
        }
        object.required.retain(|r| !names.contains(&r.as_str()));
    }
    schema
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Problem details are documented under the media type they are sent as.
fn problems_as_problem_json(response: &mut Map<String, Value>) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let is_problem = |c: &Value| c.pointer("/schema/$ref").and_then(Value::as_str) == Some(PROBLEM_SCHEMA);
    if content.get("application/json").is_some_and(is_problem) {
        if let Some(problem) = content.remove("application/json") {
            content.insert(PROBLEM_JSON.to_owned(), problem);
        }
    }
}

fn describe(status: &str, response: &mut Map<String, Value>) {
    let missing = response
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if missing {
        let reason = status
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Response");
        response.insert("description".to_owned(), Value::String(reason.to_owned()));
    }
}

/// The header a status of `AUTHENTICATED` always or sometimes carries.
fn header_of(status: u16) -> Option<(String, Value)> {
    let (name, description, required) = match status {
        401 => (
            "WWW-Authenticate",
            "A challenge for each scheme Herald accepts: Basic and Bearer",
            true,
        ),
        429 => ("Retry-After", "Seconds to wait before signing in again", true),
        503 => (
            "Retry-After",
            "Seconds to wait, when the database is unavailable",
            false,
        ),
        _ => return None,
    };
    Some((
        name.to_owned(),
        json!({ "description": description, "required": required, "schema": { "type": "string" } }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(doc: &Value) -> &Value {
        &doc["paths"]["/x"]["post"]
    }

    #[test]
    fn authenticated_json_operations_get_the_common_answers_as_problem_details() {
        let doc = complete(json!({"paths": {"/x": {"post": {
            "security": [{"basic": []}],
            "requestBody": {"content": {"application/json": {"schema": {}}}},
            "responses": {
                "201": {"content": {"application/json": {"schema": {}}}},
                "404": {"content": {"application/json": {"schema": {"$ref": PROBLEM_SCHEMA}}}}
            }
        }}}}));
        let responses = operation(&doc)["responses"].as_object().unwrap();
        let statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert_eq!(
            statuses,
            ["201", "400", "401", "403", "404", "413", "415", "429", "500", "503"]
        );
        assert_eq!(responses["201"]["description"], "Created");
        assert_eq!(responses["404"]["description"], "Not Found");
        assert!(responses["404"]["content"].get("application/json").is_none());
        assert_eq!(
            responses["415"]["content"][PROBLEM_JSON]["schema"]["$ref"],
            PROBLEM_SCHEMA
        );
        assert_eq!(responses["429"]["headers"]["Retry-After"]["required"], true);
        assert_eq!(responses["401"]["headers"]["WWW-Authenticate"]["required"], true);
    }

    #[test]
    fn anonymous_operations_keep_their_own_answers_and_other_error_bodies_stay() {
        let doc = complete(json!({"paths": {"/x": {"post": {
            "responses": {"400": {"description": "Xray's error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/XrayError"}}}}}
        }}}}));
        let responses = operation(&doc)["responses"].as_object().unwrap();
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["400"]);
        assert_eq!(responses["400"]["description"], "Xray's error");
        assert!(responses["400"]["content"].get("application/json").is_some());
    }
}
