//! Paging parameters shared by every listing: `limit` and the `after` cursor.
//!
//! They are types, so `ApiQuery` rejects a bad value the same way on every endpoint (400
//! `invalid_query` naming the field) and the OpenAPI document states the bounds from the same
//! constants the check uses.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, Error};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// `limit`: how many items one page holds, from 1 to `MAX`; `DEFAULT` when omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit<const DEFAULT: i64, const MAX: i64>(i64);

impl<const DEFAULT: i64, const MAX: i64> PageLimit<DEFAULT, MAX> {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const DEFAULT: i64, const MAX: i64> Default for PageLimit<DEFAULT, MAX> {
    fn default() -> Self {
        Self(DEFAULT)
    }
}

impl<'de, const DEFAULT: i64, const MAX: i64> Deserialize<'de> for PageLimit<DEFAULT, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(deserializer)?;
        if (1..=MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(D::Error::custom(format!("`limit` must be from 1 to {MAX}, not {n}")))
        }
    }
}

impl<const DEFAULT: i64, const MAX: i64> utoipa::PartialSchema for PageLimit<DEFAULT, MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(MAX))
            .default(Some(DEFAULT.into()))
            .description(Some(format!("Page size, 1 to {MAX} ({DEFAULT} when omitted)")))
            .into()
    }
}

impl<const DEFAULT: i64, const MAX: i64> utoipa::ToSchema for PageLimit<DEFAULT, MAX> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("PageLimit{MAX}"))
    }
}

/// `after`: the `next` of the previous page, which is the id (a UUID) of that page's last item.
/// Kept in the canonical lower-case form, because the store compares ids as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        uuid::Uuid::try_parse(&text)
            .map(|id| Cursor(id.hyphenated().to_string()))
            .map_err(|_| D::Error::custom("`after` must be the `next` of a previous page (a message id, a UUID)"))
    }
}

impl utoipa::PartialSchema for Cursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".to_owned())))
            .description(Some("The `next` of the previous page"))
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

/// `after` of the ticket list: the `next` of the previous page, which names that page's last problem:
/// its integration and dedup key, each in lower-case hex, joined by a dot. Any string of that shape
/// is a position in the list (bytes that are not UTF-8 are read leniently), so the schema's pattern
/// says exactly what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemCursor {
    pub integration: String,
    pub dedup_key: String,
}

const PROBLEM_CURSOR_PATTERN: &str = "^([0-9a-f]{2}){0,1024}\\.([0-9a-f]{2}){0,1024}$";

impl ProblemCursor {
    pub fn encode(integration: &str, dedup_key: &str) -> String {
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        format!("{}.{}", hex(integration), hex(dedup_key))
    }
}

fn unhex(text: &str) -> Option<String> {
    if text.len() % 2 != 0 || text.len() > 2048 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2)?;
            if pair.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                u8::from_str_radix(pair, 16).ok()
            } else {
                None
            }
        })
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

impl<'de> Deserialize<'de> for ProblemCursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        let refused = || D::Error::custom("`after` must be the `next` of a previous page");
        let (integration, dedup_key) = text.split_once('.').ok_or_else(refused)?;
        Ok(ProblemCursor {
            integration: unhex(integration).ok_or_else(refused)?,
            dedup_key: unhex(dedup_key).ok_or_else(refused)?,
        })
    }
}

impl utoipa::PartialSchema for ProblemCursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(PROBLEM_CURSOR_PATTERN))
            .description(Some("The `next` of the previous page"))
            .into()
    }
}

impl utoipa::ToSchema for ProblemCursor {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Query {
        #[serde(default)]
        limit: PageLimit<100, 1000>,
        after: Option<Cursor>,
    }

    fn parse(query: &str) -> Result<Query, String> {
        serde_urlencoded::from_str(query).map_err(|e| e.to_string())
    }

    #[test]
    fn limits_outside_their_bounds_are_refused() {
        assert_eq!(parse("").unwrap().limit.get(), 100);
        assert_eq!(parse("limit=1").unwrap().limit.get(), 1);
        assert_eq!(parse("limit=1000").unwrap().limit.get(), 1000);
        for bad in ["limit=0", "limit=-1", "limit=1001", "limit=100000"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("must be from 1 to 1000"), "{bad}: {err}");
        }
        assert!(parse("limit=many").is_err());
    }

    #[test]
    fn problem_cursors_round_trip_and_refuse_anything_else() {
        #[derive(Debug, serde::Deserialize)]
        struct Q {
            after: ProblemCursor,
        }
        let next = ProblemCursor::encode("jira", "scan/CVE-1 é");
        let q: Q = serde_urlencoded::from_str(&format!("after={next}")).unwrap();
        assert_eq!(
            (q.after.integration.as_str(), q.after.dedup_key.as_str()),
            ("jira", "scan/CVE-1 é")
        );
        let q: Q = serde_urlencoded::from_str("after=.").unwrap();
        assert_eq!((q.after.integration.as_str(), q.after.dedup_key.as_str()), ("", ""));
        for bad in ["after=%%%", "after=0", "after=abc.00", "after=AB.00", "after=zz.00"] {
            let err = serde_urlencoded::from_str::<Q>(bad).unwrap_err().to_string();
            assert!(err.contains("`after` must be the `next`"), "{bad}: {err}");
        }
    }

    #[test]
    fn cursors_are_uuids_in_canonical_form() {
        let upper = "0190B8E4-1C2D-7A3B-8C4D-5E6F7A8B9C0D";
        let after = parse(&format!("after={upper}")).unwrap().after.unwrap();
        assert_eq!(after.into_inner(), upper.to_ascii_lowercase());
        let err = parse("after=zzz").unwrap_err();
        assert!(err.contains("`after` must be the `next` of a previous page"), "{err}");
    }
}
