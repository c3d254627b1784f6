//! `/api/v1/users` and `/api/v1/tokens`, with their bad inputs, against both backends.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Backend, problem, spawn_app};

backend_tests!(
    creating_a_user_answers_201_with_its_location,
    duplicate_usernames_get_409,
    invalid_usernames_and_passwords_get_400_naming_the_field,
    wrong_json_types_and_unknown_fields_are_named,
    bodies_that_are_not_json_get_415_or_400,
    the_last_admin_cannot_be_deleted,
    two_admins_deleting_each_other_at_once_leave_one,
    unknown_users_get_404,
    tokens_are_shown_once_listed_without_secrets_and_revocable,
    tokens_for_unknown_users_or_with_bad_lifetimes_are_refused,
    roles_change_at_the_next_request_but_never_leave_no_admin,
    two_admins_demoting_each_other_at_once_leave_one,
);

async fn creating_a_user_answers_201_with_its_location(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .json(&json!({"username": "grafana", "password": "long-enough-pw", "role": "monitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/api/v1/users/grafana");
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!(user["username"], "grafana");
    assert_eq!(user["role"], "monitor");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    let listed: serde_json::Value = app.admin_json("/api/v1/users").await;
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "grafana"]);
    let one: serde_json::Value = app.admin_json("/api/v1/users/grafana").await;
    assert_eq!(one["role"], "monitor");
}

async fn duplicate_usernames_get_409(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("twin", "monitor").await;
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .json(&json!({"username": "twin", "password": "another-password", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem(response).await["detail"], "a user named `twin` already exists");
}

async fn invalid_usernames_and_passwords_get_400_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let cases = [
        (
            json!({"username": "", "password": "long-enough-pw", "role": "monitor"}),
            "username",
            "1 to 64",
        ),
        (
            json!({"username": "a:b", "password": "long-enough-pw", "role": "monitor"}),
            "username",
            "':'",
        ),
        (
            json!({"username": "ok", "password": "", "role": "monitor"}),
            "password",
            "at least 8",
        ),
        (
            json!({"username": "ok", "password": "short", "role": "monitor"}),
            "password",
            "at least 8",
        ),
        (
            json!({"username": "ok", "password": "x".repeat(2000), "role": "monitor"}),
            "password",
            "at most 1024",
        ),
        (
            json!({"username": "ok", "password": "long-enough-pw", "role": "root"}),
            "role",
            "unknown variant `root`",
        ),
    ];
    for (body, field, expected) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/users")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = problem(response).await;
        assert_eq!(problem["field"], field, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(expected),
            "{body}: {problem}"
        );
    }
}

async fn wrong_json_types_and_unknown_fields_are_named(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let cases = [
        (
            json!({"username": 42, "password": "long-enough-pw", "role": "monitor"}),
            "username",
            "invalid type: integer `42`",
        ),
        (
            json!({"username": "u", "password": ["x"], "role": "monitor"}),
            "password",
            "invalid type: sequence",
        ),
        (
            json!({"username": "u", "password": "long-enough-pw", "role": "monitor", "admin": true}),
            "admin",
            "unknown field `admin`",
        ),
    ];
    for (body, field, expected) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/users")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem = problem(response).await;
        assert_eq!(problem["code"], "invalid_field");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(expected), "{problem}");
    }
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .json(&json!({"username": "u"}))
        .send()
        .await
        .unwrap();
    assert!(
        problem(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `password`")
    );
}

async fn bodies_that_are_not_json_get_415_or_400(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .body("username=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(response).await["code"], "invalid_json");
    let response = app
        .admin(Method::POST, "/api/v1/users")
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn the_last_admin_cannot_be_deleted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.admin(Method::DELETE, "/api/v1/users/admin").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        problem(response).await["detail"],
        "`admin` is the last admin; create another admin first"
    );
    app.create_user("second", "admin").await;
    let response = app.admin(Method::DELETE, "/api/v1/users/second").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // A monitor does not count as an admin.
    app.create_user("mon", "monitor").await;
    let response = app.admin(Method::DELETE, "/api/v1/users/admin").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

async fn two_admins_deleting_each_other_at_once_leave_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("second", "admin").await;
    for _ in 0..5 {
        let delete_admin = app
            .delete("/api/v1/users/admin")
            .basic_auth("second", Some(&password))
            .send();
        let delete_second = app.admin(Method::DELETE, "/api/v1/users/second").send();
        let (a, b) = tokio::join!(delete_admin, delete_second);
        let statuses = [a.unwrap().status(), b.unwrap().status()];
        let deleted = statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count();
        assert!(deleted <= 1, "{statuses:?}");
        let admins = app.state.store.list_users().await.unwrap();
        assert_eq!(
            admins.iter().filter(|u| u.role == herald::auth::Role::Admin).count(),
            1,
            "{statuses:?}"
        );
        if deleted == 1 {
            break; // one admin left: nothing more to race
        }
    }
}

async fn unknown_users_get_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for (method, path) in [
        (Method::GET, "/api/v1/users/ghost"),
        (Method::DELETE, "/api/v1/users/ghost"),
    ] {
        let response = app.admin(method, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(problem(response).await["detail"], "no user named `ghost`");
    }
    let response = app
        .admin(Method::PUT, "/api/v1/users/ghost/password")
        .json(&json!({"password": "long-enough-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .admin(Method::PUT, "/api/v1/users/ghost/role")
        .json(&json!({"role": "monitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn set_role(app: &support::TestApp, user: &str, role: &str) -> reqwest::Response {
    app.admin(Method::PUT, &format!("/api/v1/users/{user}/role"))
        .json(&json!({"role": role}))
        .send()
        .await
        .unwrap()
}

async fn roles_change_at_the_next_request_but_never_leave_no_admin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = set_role(&app, "admin", "monitor").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        problem(response).await["detail"],
        "`admin` is the last admin; create another admin first"
    );
    let password = app.create_user("ops", "monitor").await;
    let (_, token) = app.create_token("ops").await;
    let as_ops = || app.get("/api/v1/users").basic_auth("ops", Some(&password));
    let with_token = || app.get("/api/v1/users").bearer_auth(&token);
    assert_eq!(as_ops().send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(with_token().send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // Promoted: the password and the token act as an admin at once (the credential cache is cleared).
    let response = set_role(&app, "ops", "admin").await;
    assert_eq!(response.status(), StatusCode::OK);
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!((&user["username"], &user["role"]), (&json!("ops"), &json!("admin")));
    assert_eq!(as_ops().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(with_token().send().await.unwrap().status(), StatusCode::OK);

    // With two admins, either may be demoted; then the other is the last.
    assert_eq!(set_role(&app, "admin", "monitor").await.status(), StatusCode::OK);
    let response = app
        .put("/api/v1/users/ops/role")
        .basic_auth("ops", Some(&password))
        .json(&json!({"role": "mail"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = app
        .put("/api/v1/users/ops/role")
        .basic_auth("ops", Some(&password))
        .json(&json!({"role": "root"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(response).await["field"], "role");
}

async fn two_admins_demoting_each_other_at_once_leave_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let password = app.create_user("second", "admin").await;
    let demote_admin = app
        .put("/api/v1/users/admin/role")
        .basic_auth("second", Some(&password))
        .json(&json!({"role": "monitor"}))
        .send();
    let demote_second = set_role(&app, "second", "monitor");
    let (a, b) = tokio::join!(demote_admin, demote_second);
    let statuses = [a.unwrap().status(), b.status()];
    // One demotion wins. The other is refused: 409 when it reaches the guard, or 403 when `second`
    // was already demoted by the time its own request was authenticated.
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN].contains(s)),
        "{statuses:?}"
    );
    let admins = app.state.store.list_users().await.unwrap();
    assert_eq!(
        admins.iter().filter(|u| u.role == herald::auth::Role::Admin).count(),
        1,
        "{statuses:?}"
    );
}

async fn tokens_are_shown_once_listed_without_secrets_and_revocable(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app
        .admin(Method::POST, "/api/v1/tokens")
        .json(&json!({"name": "grafana", "expires_in": "90d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: serde_json::Value = response.json().await.unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("hrld_") && token.len() == 48, "{token}");
    assert_eq!(created["user"], "admin");
    assert_eq!(created["role"], "admin");
    assert!(created["expires_at"].as_str().unwrap().ends_with('Z'));
    let listed = app.admin_text("/api/v1/tokens?user=admin").await;
    assert!(listed.contains("grafana") && !listed.contains(token));
    let id = created["id"].as_str().unwrap();
    let revoke = app
        .admin(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let again = app
        .admin(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let listed: serde_json::Value = app.admin_json("/api/v1/tokens").await;
    assert_eq!(listed, json!([]));
}

async fn tokens_for_unknown_users_or_with_bad_lifetimes_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let cases = [
        (json!({"name": "x", "user": "ghost"}), StatusCode::NOT_FOUND, None),
        (
            json!({"name": "x", "expires_in": "soon"}),
            StatusCode::BAD_REQUEST,
            Some("expires_in"),
        ),
        (
            json!({"name": "x", "expires_in": "1s"}),
            StatusCode::BAD_REQUEST,
            Some("expires_in"),
        ),
        (json!({"name": ""}), StatusCode::BAD_REQUEST, Some("name")),
        (
            json!({"name": "x", "user": "bad name"}),
            StatusCode::BAD_REQUEST,
            Some("user"),
        ),
        (
            json!({"name": "x", "scope": "all"}),
            StatusCode::BAD_REQUEST,
            Some("scope"),
        ),
    ];
    for (body, status, field) in cases {
        let response = app
            .admin(Method::POST, "/api/v1/tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
        let problem = problem(response).await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }
}
