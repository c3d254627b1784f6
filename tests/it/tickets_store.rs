//! The ticket tables on both backends: events stored in batches with their idempotency keys, the
//! figures metrics read, and the dedup key → issue map.

use crate::support;

use herald::store::{
    NewEventPost, NewTicketEvent, PostOutcome, Store, TicketEventFigures, TicketEventFilter, TicketRow,
};
use support::{Backend, TestDatabase};

backend_tests!(
    posts_are_stored_together_and_keys_replay_their_ids,
    figures_count_queued_events_per_integration,
    the_ticket_map_records_and_replaces_an_issue,
    expired_event_keys_are_forgotten,
);

async fn store(backend: Backend) -> Option<(TestDatabase, Store)> {
    let db = TestDatabase::new(backend).await?;
    let store = db.store().await;
    Some((db, store))
}

fn event(id: &str, integration: &str, key: &str) -> NewTicketEvent {
    NewTicketEvent {
        id: id.to_owned(),
        integration: integration.to_owned(),
        dedup_key: key.to_owned(),
        status: "firing",
        source: "api",
        context: format!(r#"{{"dedup_key":"{key}"}}"#),
    }
}

fn post(now: i64, key: Option<(&str, &str)>, events: Vec<NewTicketEvent>) -> NewEventPost {
    NewEventPost {
        node_id: "node_1".into(),
        submitted_by: "am".into(),
        now,
        idempotency: key.map(|(k, h)| (k.to_owned(), h.to_owned())),
        events,
    }
}

async fn all(store: &Store) -> Vec<(String, String, String)> {
    store
        .ticket_events(&TicketEventFilter {
            limit: 1000,
            ..TicketEventFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.dedup_key, r.state))
        .collect()
}

async fn posts_are_stored_together_and_keys_replay_their_ids(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    let outcomes = store
        .insert_ticket_events(&[
            post(
                1_000,
                Some(("k1", "h1")),
                vec![event("01", "jira", "a"), event("02", "jira", "b")],
            ),
            post(1_000, None, vec![event("03", "jira", "a")]),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [PostOutcome::Stored, PostOutcome::Stored]);
    let outcomes = store
        .insert_ticket_events(&[
            post(
                2_000,
                Some(("k1", "h1")),
                vec![event("04", "jira", "a"), event("05", "jira", "b")],
            ),
            post(2_000, Some(("k1", "other")), vec![event("06", "jira", "a")]),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            PostOutcome::Duplicate(vec!["01".into(), "02".into()]),
            PostOutcome::KeyConflict
        ]
    );
    assert_eq!(
        all(&store).await,
        [
            ("01".into(), "a".into(), "queued".into()),
            ("02".into(), "b".into(), "queued".into()),
            ("03".into(), "a".into(), "queued".into())
        ]
    );
    let row = store.ticket_event("02").await.unwrap().unwrap();
    assert_eq!(
        (
            row.node_id.as_str(),
            row.submitted_by.as_str(),
            row.created_at,
            row.next_attempt_at,
            row.context.as_str()
        ),
        ("node_1", "am", 1_000, 1_000, r#"{"dedup_key":"b"}"#)
    );
    let of_a: Vec<String> = store
        .ticket_events(&TicketEventFilter {
            integration: Some("jira".into()),
            dedup_key: Some("a".into()),
            states: vec!["queued"],
            limit: 10,
            ..TicketEventFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(of_a, ["01", "03"]);
    // A post whose events cannot all be stored stores none of them (here: a duplicate id).
    let failed = store
        .insert_ticket_events(&[post(
            3_000,
            Some(("k2", "h")),
            vec![event("07", "jira", "c"), event("01", "jira", "c")],
        )])
        .await;
    assert!(failed.is_err());
    assert_eq!(all(&store).await.len(), 3);
    assert!(store.ticket_event("07").await.unwrap().is_none());
}

async fn figures_count_queued_events_per_integration(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    assert!(store.ticket_event_figures().await.unwrap().is_empty());
    store
        .insert_ticket_events(&[
            post(5_000, None, vec![event("01", "jira", "a"), event("02", "jira", "b")]),
            post(7_000, None, vec![event("03", "cloud", "a")]),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.ticket_event_figures().await.unwrap(),
        [
            TicketEventFigures {
                integration: "cloud".into(),
                queued: 1,
                errors: 0,
                oldest_queued_at: Some(7_000)
            },
            TicketEventFigures {
                integration: "jira".into(),
                queued: 2,
                errors: 0,
                oldest_queued_at: Some(5_000)
            }
        ]
    );
}

async fn the_ticket_map_records_and_replaces_an_issue(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    assert!(store.ticket("jira", "a").await.unwrap().is_none());
    let mut ticket = TicketRow {
        integration: "jira".into(),
        dedup_key: "a".into(),
        issue_key: None,
        issue_id: None,
        state: "creating".into(),
        resolution: None,
        resolved_at: None,
        last_comment_hash: None,
        last_event_id: Some("01".into()),
        last_event_at: Some(1_000),
        created_at: 1_000,
        updated_at: 1_000,
        summary: None,
        issue_url: None,
    };
    store.save_ticket(&ticket).await.unwrap();
    assert_eq!(store.ticket("jira", "a").await.unwrap().as_ref(), Some(&ticket));
    ticket.issue_key = Some("OPS-7".into());
    ticket.issue_id = Some("10007".into());
    ticket.state = "resolved".into();
    ticket.resolution = Some("Done".into());
    ticket.resolved_at = Some(2_000);
    ticket.updated_at = 2_000;
    let mut replaced = ticket.clone();
    replaced.created_at = 9_999; // not taken: an issue keeps its first record's time
    store.save_ticket(&replaced).await.unwrap();
    assert_eq!(store.ticket("jira", "a").await.unwrap(), Some(ticket));
    assert!(store.ticket("other", "a").await.unwrap().is_none());
}

async fn expired_event_keys_are_forgotten(backend: Backend) {
    let Some((_db, store)) = store(backend).await else {
        return;
    };
    store
        .insert_ticket_events(&[
            post(1_000, Some(("old", "h")), vec![event("01", "jira", "a")]),
            post(5_000, Some(("new", "h")), vec![event("02", "jira", "a")]),
        ])
        .await
        .unwrap();
    assert_eq!(store.prune_ticket_event_keys(2_000).await.unwrap(), 1);
    let outcomes = store
        .insert_ticket_events(&[
            post(6_000, Some(("old", "h")), vec![event("03", "jira", "a")]),
            post(6_000, Some(("new", "h")), vec![event("04", "jira", "a")]),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [PostOutcome::Stored, PostOutcome::Duplicate(vec!["02".into()])]
    );
}
