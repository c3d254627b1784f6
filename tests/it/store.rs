//! The store test suite: the same tests against SQLite and PostgreSQL.

use crate::support;

use herald::auth::{Role, Username};
use herald::store::{AdminGuarded, NewToken, NewUser, Store, StoreError};
use support::{Backend, TestDatabase};

backend_tests!(
    migrations_are_idempotent,
    users_round_trip_and_names_are_unique,
    deleting_users_guards_the_last_admin,
    role_changes_guard_the_last_admin_even_when_racing,
    tokens_are_found_by_hash_listed_and_deleted,
    deleting_a_user_deletes_their_tokens,
    password_hashes_are_replaced,
    the_data_dir_is_private_to_herald_s_user,
);

async fn store(backend: Backend) -> Option<(TestDatabase, Store)> {
    let db = TestDatabase::new(backend).await?;
    let store = db.store().await;
    Some((db, store))
}

fn name(s: &str) -> Username {
    Username::try_from(s).unwrap()
}

async fn add_user(store: &Store, username: &str, role: Role) {
    store
        .insert_user(&NewUser {
            username: &name(username),
            password_hash: "$argon2id$fake",
            role,
            now: 1_000,
        })
        .await
        .unwrap();
}

async fn migrations_are_idempotent(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert_eq!(
        store.backend() == herald::store::Backend::Postgres,
        backend == Backend::Postgres
    );
    store.ping().await.unwrap();
}

async fn users_round_trip_and_names_are_unique(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    add_user(&store, "zed", Role::Monitor).await;
    add_user(&store, "amy", Role::Admin).await;
    let amy = store.user_by_name("amy").await.unwrap().unwrap();
    assert_eq!(amy.role, Role::Admin);
    assert_eq!(amy.password_hash, "$argon2id$fake");
    assert_eq!((amy.created_at, amy.updated_at), (1_000, 1_000));
    assert!(
        store.user_by_name("Amy").await.unwrap().is_none(),
        "names are case-sensitive"
    );
    let names: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username.to_string())
        .collect();
    assert_eq!(names, ["amy", "zed"]);
    let err = store
        .insert_user(&NewUser {
            username: &name("amy"),
            password_hash: "h",
            role: Role::Monitor,
            now: 2_000,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(what) if what == "a user named `amy`"),
        "{err:?}"
    );
    assert_eq!(store.count_users().await.unwrap(), 2);
}

async fn deleting_users_guards_the_last_admin(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    add_user(&store, "root", Role::Admin).await;
    add_user(&store, "mon", Role::Monitor).await;
    assert_eq!(store.delete_user("root").await.unwrap(), AdminGuarded::LastAdmin);
    assert_eq!(store.delete_user("ghost").await.unwrap(), AdminGuarded::NotFound);
    assert_eq!(store.delete_user("mon").await.unwrap(), AdminGuarded::Done);
    add_user(&store, "root2", Role::Admin).await;
    assert_eq!(store.delete_user("root").await.unwrap(), AdminGuarded::Done);
    assert_eq!(store.delete_user("root2").await.unwrap(), AdminGuarded::LastAdmin);
}

async fn role_changes_guard_the_last_admin_even_when_racing(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    add_user(&store, "root", Role::Admin).await;
    add_user(&store, "mon", Role::Monitor).await;
    assert_eq!(
        store.set_role("root", Role::Monitor, 1).await.unwrap(),
        AdminGuarded::LastAdmin
    );
    assert_eq!(
        store.set_role("ghost", Role::Admin, 1).await.unwrap(),
        AdminGuarded::NotFound
    );
    assert_eq!(store.set_role("mon", Role::Admin, 2).await.unwrap(), AdminGuarded::Done);
    let mon = store.user_by_name("mon").await.unwrap().unwrap();
    assert_eq!((mon.role, mon.updated_at), (Role::Admin, 2));
    // Two admins demoting each other at the same moment, many times over: one admin is always left.
    for round in 0..20 {
        let (a, b) = tokio::join!(
            store.set_role("root", Role::Monitor, 3),
            store.set_role("mon", Role::Mail, 3)
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        assert!(
            outcomes.contains(&AdminGuarded::LastAdmin),
            "round {round}: {outcomes:?}"
        );
        let admins = store.list_users().await.unwrap();
        assert_eq!(
            admins.iter().filter(|u| u.role == Role::Admin).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        store.set_role("root", Role::Admin, 4).await.unwrap();
        store.set_role("mon", Role::Admin, 4).await.unwrap();
    }
}

fn token<'a>(id: &'a str, username: &'a Username, token_hash: &'a str, expires_at: Option<i64>) -> NewToken<'a> {
    NewToken {
        id,
        username,
        name: "t",
        token_hash,
        now: 5_000,
        expires_at,
    }
}

async fn tokens_are_found_by_hash_listed_and_deleted(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    add_user(&store, "amy", Role::Admin).await;
    add_user(&store, "bob", Role::Monitor).await;
    let (amy, bob, ghost) = (name("amy"), name("bob"), name("ghost"));
    let stored = store
        .insert_token(&token("t1", &amy, "h1", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.username.as_str(), "amy");
    assert_eq!(stored.role, Role::Admin);
    store
        .insert_token(&token("t2", &bob, "h2", Some(9_000)))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .insert_token(&token("t3", &ghost, "h3", None))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.insert_token(&token("t1", &bob, "h4", None)).await,
        Err(StoreError::Conflict(_))
    ));
    let found = store.token_by_hash("h2").await.unwrap().unwrap();
    assert_eq!(
        (found.token.id.as_str(), found.token.expires_at, found.role),
        ("t2", Some(9_000), Role::Monitor)
    );
    assert!(store.token_by_hash("nope").await.unwrap().is_none());
    assert_eq!(store.list_tokens(None).await.unwrap().len(), 2);
    let bobs = store.list_tokens(Some("bob")).await.unwrap();
    assert_eq!(bobs.iter().map(|t| t.token.id.as_str()).collect::<Vec<_>>(), ["t2"]);
    store.touch_token("t2", 7_000).await.unwrap();
    assert_eq!(
        store.token_by_id("t2").await.unwrap().unwrap().token.last_used_at,
        Some(7_000)
    );
    assert!(store.delete_token("t2").await.unwrap());
    assert!(!store.delete_token("t2").await.unwrap());
}

async fn deleting_a_user_deletes_their_tokens(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    add_user(&store, "amy", Role::Admin).await;
    add_user(&store, "bob", Role::Monitor).await;
    let bob = name("bob");
    let new = NewToken {
        id: "tb",
        username: &bob,
        name: "t",
        token_hash: "hb",
        now: 1,
        expires_at: None,
    };
    store.insert_token(&new).await.unwrap().unwrap();
    assert_eq!(store.delete_user("bob").await.unwrap(), AdminGuarded::Done);
    assert!(store.token_by_hash("hb").await.unwrap().is_none());
}

async fn password_hashes_are_replaced(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    add_user(&store, "amy", Role::Admin).await;
    assert!(store.set_password_hash("amy", "$argon2id$new", 3_000).await.unwrap());
    assert!(!store.set_password_hash("ghost", "x", 3_000).await.unwrap());
    let amy = store.user_by_name("amy").await.unwrap().unwrap();
    assert_eq!((amy.password_hash.as_str(), amy.updated_at), ("$argon2id$new", 3_000));
}

async fn the_data_dir_is_private_to_herald_s_user(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let data_dir = db.dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A file left readable by everyone, as an older version wrote it.
    std::fs::write(data_dir.join("node-id"), "node-a").unwrap();
    std::fs::set_permissions(data_dir.join("node-id"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut settings = herald::config::Settings::for_data_dir(&data_dir, db.url.clone());
    settings.database.timeout = std::time::Duration::from_secs(3);
    let store = herald::app::open_store(&settings).await.unwrap();
    add_user(&store, "someone", Role::Admin).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    let files: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if backend == Backend::Sqlite {
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "herald.db"), "{names:?}");
        assert!(names.iter().any(|n| n == "herald.db-wal"), "{names:?}");
    }
    for file in files {
        assert_eq!(mode(&file) & 0o077, 0, "{} is {:o}", file.display(), mode(&file));
    }
    store.close().await;
}
