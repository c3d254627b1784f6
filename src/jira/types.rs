//! The parts of Jira's REST answers that the check reads. Cloud and Data Center differ in places
//! (`issueTypes`/`fields` vs `values`); both are accepted.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCollection {
    #[serde(default)]
    pub error_messages: Vec<String>,
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    #[serde(default)]
    pub base_url: Option<String>,
    pub version: String,
    /// `Cloud`, or `Server` (Data Center reports `Server` too).
    #[serde(default)]
    pub deployment_type: Option<String>,
    #[serde(default)]
    pub server_title: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Myself {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MyPermissions {
    pub permissions: BTreeMap<String, Permission>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub have_permission: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueType {
    pub id: String,
    pub name: String,
}

/// `GET /rest/api/2/issue/createmeta/{project}/issuetypes`: Cloud says `issueTypes`, Data Center `values`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueTypePage {
    #[serde(default, alias = "values")]
    pub issue_types: Vec<IssueType>,
    #[serde(default)]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMeta {
    #[serde(default)]
    pub field_id: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
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
}
