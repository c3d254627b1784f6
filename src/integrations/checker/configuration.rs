//! Step 3 of the check, configuration: the project, the permissions, the issue type and every field
//! the create screen requires, read page by page as Jira pages its lists.

use super::*;

impl Run<'_> {
    /// Step 3: the project, the permissions, the issue type and its required fields.
    pub(super) async fn configuration(&mut self, user: &str) -> StepResult<String> {
        let Some(key) = self.settings.project_key.clone() else {
            return Ok("no project configured; nothing more to check".to_owned());
        };
        self.wave(3);
        let project_path = format!("/rest/api/2/project/{key}");
        let mut wanted_permissions = vec!["BROWSE_PROJECTS", "CREATE_ISSUES"];
        wanted_permissions.extend(self.ticket_permissions());
        let permissions_path = format!(
            "/rest/api/2/mypermissions?projectKey={key}&permissions={}",
            wanted_permissions.join(",")
        );
        let types_path = format!("/rest/api/2/issue/createmeta/{key}/issuetypes");
        let first_types_page = page_path(&types_path, 0);
        let (project, permissions, types) = tokio::join!(
            self.get(&project_path, Credentials::Configured),
            self.get(&permissions_path, Credentials::Configured),
            self.get(&first_types_page, Credentials::Configured),
        );
        let project = self.expect_ok(project, "project")?;
        if project.status.as_u16() == 404 {
            return Err(configuration(format!(
                "project `{key}` does not exist or user `{user}` cannot see it (GET /rest/api/2/project/{key}: HTTP \
                 404{})",
                comma(&project.error_summary())
            )));
        }
        let project: Project = self.parse(&project, "project")?;
        let permissions = self.expect_ok(permissions, "mypermissions")?;
        let permissions: MyPermissions = self.parse(&permissions, "mypermissions")?;
        let missing: Vec<&str> = wanted_permissions
            .into_iter()
            .filter(|p| {
                permissions
                    .permissions
                    .get(*p)
                    .is_none_or(|p| p.have_permission != Some(true))
            })
            .collect();
        if !missing.is_empty() {
            return Err(configuration(format!(
                "user `{user}` lacks the permission{} {} in project `{}`; grant {} in the project's permission \
                 scheme",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(" and "),
                project.key,
                if missing.len() > 1 { "them" } else { "it" }
            )));
        }
        let Some(wanted) = self.settings.issue_type.clone() else {
            return Ok(format!(
                "project `{}` is visible and `{user}` may browse it and create issues",
                project.key
            ));
        };
        let types = self.expect_ok(types, "issue types")?;
        let (issue_type, fields) = if types.status.as_u16() == 404 {
            self.legacy_createmeta(&key, &wanted).await?
        } else {
            let issue_types = self
                .all_pages::<IssueTypePage>(&types_path, types, "issue types")
                .await?;
            let issue_type = find_issue_type(&issue_types, &wanted).ok_or_else(|| {
                configuration(format!(
                    "issue type `{wanted}` is not available in project `{key}`; available: {}",
                    names(&issue_types)
                ))
            })?;
            self.wave(1);
            let fields_path = format!("/rest/api/2/issue/createmeta/{key}/issuetypes/{}", issue_type.id);
            let first = self.get(&page_path(&fields_path, 0), Credentials::Configured).await;
            let first = self.expect_ok(first, "create fields")?;
            if !first.status.is_success() {
                return Err(configuration(format!(
                    "GET {fields_path} answered {}",
                    http_answer(&first)
                )));
            }
            let fields = self
                .all_pages::<FieldPage>(&fields_path, first, "create fields")
                .await?;
            (issue_type, fields)
        };
        self.check_fields(&key, &issue_type, &fields)?;
        let notes = self.ticket_needs(&key, &issue_type, &fields).await?;
        let mut detail = format!(
            "project `{key}` is visible, `{user}` may create issues, and issue type `{}` ({}) can be created with \
             the configured fields",
            issue_type.name, issue_type.id
        );
        if self.settings.tickets.as_deref().is_some_and(|t| t.enabled) {
            detail.push_str("; tickets: ");
            if notes.is_empty() {
                detail.push_str("the permissions, the Labels field and the transitions they need are there");
            } else {
                detail.push_str(&notes.join("; "));
            }
        }
        Ok(detail)
    }

    /// Jira before 8.4 has only `createmeta?projectKeys=…`; used only when the new form is 404.
    async fn legacy_createmeta(&mut self, key: &str, wanted: &str) -> StepResult<(IssueType, Vec<FieldMeta>)> {
        self.wave(1);
        let answer = self
            .get(
                &format!("/rest/api/2/issue/createmeta?projectKeys={key}&expand=projects.issuetypes.fields"),
                Credentials::Configured,
            )
            .await;
        let answer = self.expect_ok(answer, "createmeta")?;
        if !answer.status.is_success() {
            return Err(configuration(format!(
                "neither createmeta form answers for project `{key}` (the old one answered {})",
                http_answer(&answer)
            )));
        }
        let meta: LegacyCreateMeta = self.parse(&answer, "createmeta")?;
        let project = meta
            .projects
            .into_iter()
            .find(|p| p.key.eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                configuration(format!(
                    "user may not create issues in project `{key}` (createmeta is empty)"
                ))
            })?;
        let types: Vec<IssueType> = project
            .issuetypes
            .iter()
            .map(|t| IssueType {
                id: t.id.clone(),
                name: t.name.clone(),
            })
            .collect();
        let found = find_issue_type(&types, wanted).ok_or_else(|| {
            configuration(format!(
                "issue type `{wanted}` is not available in project `{key}`; available: {}",
                names(&types)
            ))
        })?;
        let fields = project
            .issuetypes
            .into_iter()
            .find(|t| t.id == found.id)
            .map(|t| {
                t.fields
                    .into_iter()
                    .map(|(id, mut meta)| {
                        meta.field_id.get_or_insert(id);
                        meta
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((found, fields))
    }

    fn check_fields(&self, key: &str, issue_type: &IssueType, fields: &[FieldMeta]) -> StepResult<()> {
        let id_of = |f: &FieldMeta| f.field_id.clone().or_else(|| f.key.clone()).unwrap_or_default();
        let missing: Vec<String> = fields
            .iter()
            .filter(|f| f.required && !f.has_default_value)
            .filter(|f| {
                let id = id_of(f);
                !FIELDS_HERALD_SETS.contains(&id.as_str()) && !self.settings.fields.contains_key(&id)
            })
            .map(|f| {
                let id = id_of(f);
                match &f.name {
                    Some(name) if *name != id => format!("`{id}` ({name})"),
                    _ => format!("`{id}`"),
                }
            })
            .collect();
        if !missing.is_empty() {
            return Err(configuration(format!(
                "issue type `{}` in project `{key}` requires {} that Herald does not set; add {} to `fields`",
                issue_type.name,
                missing.join(", "),
                if missing.len() > 1 { "them" } else { "it" }
            )));
        }
        let unknown: Vec<String> = self
            .settings
            .fields
            .keys()
            .filter(|id| !fields.iter().any(|f| id_of(f) == **id))
            .map(|id| format!("`{id}`"))
            .collect();
        if !unknown.is_empty() && !fields.is_empty() {
            return Err(configuration(format!(
                "`fields` sets {} which the create screen of issue type `{}` in project `{key}` does not have; \
                 Jira would refuse the ticket",
                unknown.join(", "),
                issue_type.name
            )));
        }
        Ok(())
    }

    /// An answer to a configuration request, or the failure that stops the step.
    pub(super) fn expect_ok(&self, answer: Result<JiraResponse, JiraError>, what: &str) -> StepResult<JiraResponse> {
        let response = answer.map_err(|e| match e {
            e if e.is_unreachable() => connectivity(e),
            other => configuration(format!("reading {what} failed: {other}")),
        })?;
        if let Some(denial) = auth_denial(&response).filter(|_| response.status.as_u16() != 404) {
            if !matches!(denial, AuthDenial::Forbidden { .. }) {
                return Err(authentication(format!(
                    "Jira stopped accepting the credentials while reading {what} ({denial})"
                )));
            }
        }
        if response.status.is_server_error() || response.status.as_u16() == 429 {
            return Err(configuration(format!(
                "reading {what} failed: Jira answered {}",
                http_answer(&response)
            )));
        }
        Ok(response)
    }

    pub(super) fn parse<T: serde::de::DeserializeOwned>(&self, response: &JiraResponse, what: &str) -> StepResult<T> {
        if !response.status.is_success() {
            return Err(configuration(format!(
                "reading {what} failed: Jira answered {}",
                http_answer(response)
            )));
        }
        response
            .json()
            .map_err(|e| configuration(format!("Jira's answer for {what} is not the expected JSON ({e})")))
    }

    /// Every item of a paged list whose first page (asked for with [`page_path`]) is `first`: the
    /// next pages follow `startAt` as far as Jira's `isLast`, `total` or page size say there are
    /// more, at most [`MAX_PAGES`] pages (a list that does not end by then is reported, not cut).
    async fn all_pages<P: Page>(&mut self, path: &str, first: JiraResponse, what: &str) -> StepResult<Vec<P::Item>> {
        let mut items = Vec::new();
        let mut response = first;
        for page in 1..=MAX_PAGES {
            let (got, paging) = self.parse::<P>(&response, what)?.into_parts();
            let count = got.len();
            items.extend(got);
            if paging.is_last_page(count, items.len()) {
                return Ok(items);
            }
            if page == MAX_PAGES {
                break;
            }
            self.wave(1);
            let next = self.get(&page_path(path, items.len()), Credentials::Configured).await;
            response = self.expect_ok(next, what)?;
        }
        Err(configuration(format!(
            "Jira's list of {what} (GET {path}) did not end within {MAX_PAGES} pages ({} items); Herald does not \
             judge a list it cannot read to the end",
            items.len()
        )))
    }
}

/// The most pages of one list the check reads (a create screen of thousands of fields is not a
/// screen anyone fills in; a list that never ends is a broken or hostile Jira).
pub const MAX_PAGES: usize = 20;
/// The page size asked for; Jira may answer with fewer (Cloud caps pages at 50).
pub const PAGE_SIZE: usize = 200;

/// `path` asking for the page that starts at item `start`.
fn page_path(path: &str, start: usize) -> String {
    format!("{path}?startAt={start}&maxResults={PAGE_SIZE}")
}

fn find_issue_type(types: &[IssueType], wanted: &str) -> Option<IssueType> {
    types
        .iter()
        .find(|t| t.id == wanted)
        .or_else(|| types.iter().find(|t| t.name.eq_ignore_ascii_case(wanted)))
        .cloned()
}

fn names(types: &[IssueType]) -> String {
    if types.is_empty() {
        return "none".to_owned();
    }
    types
        .iter()
        .map(|t| format!("`{}` ({})", t.name, t.id))
        .collect::<Vec<_>>()
        .join(", ")
}
