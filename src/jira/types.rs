//! The parts of Jira's REST answers that the check reads, and nothing else. Cloud and Data Center
//! differ in places (`issueTypes`/`fields` vs `values`); both are accepted.
//!
//! Each answer is read once, into these types, leniently: fields Herald does not use are not
//! declared (so they may hold anything), and fields it uses only as hints (versions, titles, paging
//! figures, identities) become `None` when they are out of their type, as a schema-valid answer may
//! make them (`"total": -8815336996594223`). Only what a verdict rests on is strict.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Reads a value of type `T`, or `None` when it is absent, null or of another type.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// A string hint: `None` when absent, of another type, or empty (Cloud answers `"name": ""`).
fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(lenient::<D, String>(deserializer)?.filter(|s| !s.trim().is_empty()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCollection {
    #[serde(default, deserialize_with = "lenient")]
    pub error_messages: Option<Vec<serde_json::Value>>,
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Option<BTreeMap<String, serde_json::Value>>,
}

impl ErrorCollection {
    /// The messages as text (a message that is not a string is shown as JSON).
    pub fn messages(self) -> Vec<String> {
        let text = |v: serde_json::Value| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let mut parts: Vec<String> = self.error_messages.unwrap_or_default().into_iter().map(text).collect();
        parts.extend(
            self.errors
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}: {}", text(v))),
        );
        parts.retain(|p| !p.trim().is_empty());
        parts
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    #[serde(default, deserialize_with = "lenient_text")]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub version: Option<String>,
    /// `Cloud`, or `Server` (Data Center reports `Server` too). Atlassian's own Cloud example omits it.
    #[serde(default, deserialize_with = "lenient_text")]
    pub deployment_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub server_title: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Myself {
    /// The login name (Data Center); empty or absent on Cloud.
    #[serde(default, deserialize_with = "lenient_text")]
    pub name: Option<String>,
    /// The user key (Data Center); empty or absent on Cloud.
    #[serde(default, deserialize_with = "lenient_text")]
    pub key: Option<String>,
    /// Cloud's only stable user id.
    #[serde(default, deserialize_with = "lenient_text")]
    pub account_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub email_address: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub active: Option<bool>,
}

impl Myself {
    /// Jira Cloud names users by accountId only (no `name`, no `key`, since its GDPR changes).
    pub fn is_account_id_only(&self) -> bool {
        self.account_id.is_some() && self.name.is_none() && self.key.is_none()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MyPermissions {
    pub permissions: BTreeMap<String, Permission>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Anything but `true` is not a permission Herald can count on.
    #[serde(default, deserialize_with = "lenient")]
    pub have_permission: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueType {
    pub id: String,
    pub name: String,
}

/// The paging figures of a Jira page, as far as they are usable.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    #[serde(default, deserialize_with = "lenient")]
    pub max_results: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub total: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_last: Option<bool>,
}

impl Paging {
    /// Whether a page of `count` items, the last of them number `seen` overall, ends the list:
    /// `isLast` when Jira says it (Data Center), else `total` (Cloud), else a page shorter than
    /// `maxResults`; a page that says nothing usable, or is empty, is the last.
    pub fn is_last_page(&self, count: usize, seen: usize) -> bool {
        if count == 0 {
            return true;
        }
        if let Some(last) = self.is_last {
            return last;
        }
        if let Some(total) = self.total.filter(|t| *t >= 0) {
            return i64::try_from(seen).unwrap_or(i64::MAX) >= total;
        }
        if let Some(max) = self.max_results.filter(|m| *m > 0) {
            return i64::try_from(count).unwrap_or(i64::MAX) < max;
        }
        true
    }
}

/// A page of a paged Jira list.
pub trait Page: serde::de::DeserializeOwned {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Paging);
}

/// `GET /rest/api/2/issue/createmeta/{project}/issuetypes`: Cloud says `issueTypes`, Data Center `values`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueTypePage {
    #[serde(default, alias = "values")]
    pub issue_types: Vec<IssueType>,
    #[serde(flatten)]
    pub paging: Paging,
}

impl Page for IssueTypePage {
    type Item = IssueType;
    fn into_parts(self) -> (Vec<IssueType>, Paging) {
        (self.issue_types, self.paging)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMeta {
    #[serde(default, deserialize_with = "lenient_text")]
    pub field_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub key: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub name: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub has_default_value: bool,
}

/// `GET /rest/api/2/issue/createmeta/{project}/issuetypes/{id}`: Cloud says `fields`, Data Center `values`.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldPage {
    #[serde(default, alias = "values")]
    pub fields: Vec<FieldMeta>,
    #[serde(flatten)]
    pub paging: Paging,
}

impl Page for FieldPage {
    type Item = FieldMeta;
    fn into_parts(self) -> (Vec<FieldMeta>, Paging) {
        (self.fields, self.paging)
    }
}

/// The pre-8.4 `GET /rest/api/2/issue/createmeta?projectKeys=…&expand=projects.issuetypes.fields`.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyCreateMeta {
    #[serde(default)]
    pub projects: Vec<LegacyProject>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LegacyProject {
    pub key: String,
    #[serde(default)]
    pub issuetypes: Vec<LegacyIssueType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LegacyIssueType {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldMeta>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_and_data_center_shapes_both_parse() {
        let cloud: IssueTypePage =
            serde_json::from_str(r#"{"issueTypes":[{"id":"1","name":"Bug"}],"total":1}"#).unwrap();
        let dc: IssueTypePage = serde_json::from_str(r#"{"values":[{"id":"1","name":"Bug"}],"isLast":true}"#).unwrap();
        assert_eq!(cloud.issue_types[0].name, dc.issue_types[0].name);
        let fields: FieldPage =
            serde_json::from_str(r#"{"values":[{"fieldId":"summary","required":true,"name":"Summary"}]}"#).unwrap();
        assert!(fields.fields[0].required);
    }

    #[test]
    fn fields_out_of_their_type_are_unknown_not_a_fault() {
        let page: IssueTypePage = serde_json::from_str(
            r#"{"issueTypes":[{"id":"1","name":"Bug","subtask":"maybe"}],"total":-8815336996594223,
                "maxResults":1e300,"startAt":"x","isLast":null}"#,
        )
        .unwrap();
        assert_eq!(page.issue_types.len(), 1);
        // Read as it is (no u64 to overflow); a negative total is simply no figure for paging.
        assert_eq!(
            (page.paging.total, page.paging.max_results, page.paging.is_last),
            (Some(-8815336996594223), None, None)
        );
        assert!(page.paging.is_last_page(1, 1));
        let info: ServerInfo = serde_json::from_str(
            r#"{"version":7,"buildNumber":-1,"deploymentType":["Cloud"],"serverTitle":null,"versionNumbers":"x"}"#,
        )
        .unwrap();
        assert_eq!((info.version, info.deployment_type), (None, None));
        let me: Myself =
            serde_json::from_str(r#"{"accountId":"5b10","name":"","key":"","active":"yes","groups":7}"#).unwrap();
        assert!(me.is_account_id_only());
        assert_eq!(me.active, None);
        let errors: ErrorCollection =
            serde_json::from_str(r#"{"errorMessages":["No.", 5],"errors":{"a":"b","c":{"d":1}},"status":-3}"#).unwrap();
        assert_eq!(errors.messages(), ["No.", "5", "a: b", r#"c: {"d":1}"#]);
    }

    #[test]
    fn the_last_page_is_recognised_from_what_jira_says() {
        let paging = |is_last, total, max_results| Paging {
            max_results,
            total,
            is_last,
        };
        assert!(!paging(Some(false), Some(3), None).is_last_page(50, 50));
        assert!(paging(Some(true), None, None).is_last_page(50, 250));
        assert!(!paging(None, Some(250), Some(50)).is_last_page(50, 200));
        assert!(paging(None, Some(250), Some(50)).is_last_page(50, 250));
        // A negative total is no figure: the page size decides.
        assert!(!paging(None, Some(-8815336996594223), Some(50)).is_last_page(50, 50));
        assert!(paging(None, Some(-1), Some(50)).is_last_page(10, 60));
        assert!(paging(None, None, None).is_last_page(200, 200));
        assert!(paging(Some(false), None, None).is_last_page(0, 200));
    }
}
