//! How the OpenAPI document describes an integration spec's fields where utoipa cannot derive it:
//! the server's rules written as patterns and closed objects, so that a schema-valid request is one
//! the server accepts.

use super::model::AuthSpec;

/// The characters Rust's `str::trim` removes (Unicode White_Space), as a regular expression class:
/// what "blank" means in the rules below. Written out because `\s` differs between regex dialects.
pub const WHITE_SPACE_CLASS: &str = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// What `ca_cert_pem` accepts: blank, or PEM `CERTIFICATE` blocks whose content is canonical base64
/// on one line (what `reqwest::Certificate::from_pem_bundle` reads). Whether the bytes are a usable
/// certificate is the check's business, not the request's: a bad one makes the check fail.
pub(super) const CA_CERT_PEM_PATTERN: &str = concat!(
    r"^([\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*|",
    r"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)\r?\n-----END CERTIFICATE-----",
    r"(\r?\n-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)\r?\n-----END CERTIFICATE-----)*\r?\n?)$"
);

/// `ca_cert_pem`'s schema.
pub(super) fn ca_cert_pem_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "PEM CA certificate(s) for a Jira with a private CA; when set, only these are trusted. Blank means none.",
        ))
        .pattern(Some(CA_CERT_PEM_PATTERN))
        .build()
}

/// `fields`' schema: an object whose keys are Jira field ids (no white space or control characters).
pub(super) fn field_map_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let id = format!(
        r"^[^{}\x00-\x1f\x7f-\x9f]+$",
        &WHITE_SPACE_CLASS[1..WHITE_SPACE_CLASS.len() - 1]
    );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Extra fields set on every ticket: field id → value as Jira expects it; needs `project_key`.",
        ))
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(id))))
        .build()
}

/// `AuthSpec`'s schema with each variant closed (`additionalProperties: false`), as serde's
/// `deny_unknown_fields` makes it: utoipa leaves the variants of a tagged enum open.
pub(super) fn auth_spec_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let mut schema = <AuthSpec as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::OneOf(one_of)) = &mut schema {
        for variant in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = variant {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    schema
}
