//! The core on a real SQLite file: retention and resume limits, failed writes, and questions.

use std::time::Duration;

use serde_json::json;
use switchboard_core::{
    ClientInfo, Delivery, EventDraft, Hub, HubConfig, Pattern, Retention, Source, SubscribeOpts,
};

async fn hub(dir: &std::path::Path, max_events: u64) -> Hub {
    let mut cfg = HubConfig::new(dir);
    cfg.retention = Retention {
        max_events,
        max_age: Duration::from_secs(3600),
    };
    Hub::open(cfg).await.unwrap()
}

async fn publish(hub: &Hub, n: u64) {
    for i in 0..n {
        hub.publish(EventDraft::new("c", "e", json!(i), Source::System).unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn prune_keeps_the_newest_and_limits_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 5).await;
    publish(&hub, 12).await;
    assert_eq!(hub.prune().await.unwrap(), 7);
    assert_eq!(
        hub.prune().await.unwrap(),
        0,
        "pruning again removes nothing"
    );
    let left: Vec<u64> = hub
        .events(None, Some(0), 100, true)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq())
        .collect();
    assert_eq!(left, [8, 9, 10, 11, 12]);

    let mut s = hub.connect(ClientInfo {
        id: "t".into(),
        transport: "test",
        ..Default::default()
    });
    let old = s
        .subscribe(
            Pattern::parse("c").unwrap(),
            SubscribeOpts {
                since: Some(3),
                ..Default::default()
            },
            |_| None,
        )
        .unwrap();
    assert_eq!(old.recovered, Some(false), "events 4..7 are gone");
    s.unsubscribe(&Pattern::parse("c").unwrap());
    let ok = s
        .subscribe(
            Pattern::parse("c").unwrap(),
            SubscribeOpts {
                since: Some(9),
                ..Default::default()
            },
            |_| None,
        )
        .unwrap();
    assert_eq!(ok.recovered, Some(true));
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap()
        {
            Some(Delivery::Event(e)) => got.push(e.seq()),
            Some(Delivery::Control(_)) => {}
            None => panic!("session ended"),
        }
    }
    assert_eq!(got, [10, 11, 12]);
    drop(s);
    hub.shutdown().await;

    // The log's position and the prune mark survive a restart; seq is never reused.
    let hub = self::hub(tmp.path(), 5).await;
    assert_eq!(hub.last_seq(), 12);
    hub.prune().await.unwrap();
    publish(&hub, 1).await;
    assert_eq!(hub.last_seq(), 13);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_failed_write_leaves_no_row_and_no_event() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 100).await;
    let mut s = hub.connect(ClientInfo {
        id: "t".into(),
        transport: "test",
        ..Default::default()
    });
    s.subscribe(
        Pattern::parse("*").unwrap(),
        SubscribeOpts::default(),
        |_| None,
    )
    .unwrap();
    let bad: switchboard_core::AgentPatch =
        serde_json::from_value(json!({"status": "NOT OK"})).unwrap();
    let a = hub
        .create_agent(
            serde_json::from_value(json!({"name": "a"})).unwrap(),
            Source::Mcp,
        )
        .await
        .unwrap();
    assert!(
        hub.update_agent(&a.id, bad, None, Source::Mcp)
            .await
            .is_err()
    );
    assert!(
        hub.update_agent(&a.id, Default::default(), Some(9), Source::Mcp)
            .await
            .is_err()
    );
    assert_eq!(hub.get_agent(&a.id).await.unwrap().version, 1);
    assert_eq!(hub.last_seq(), 1);
    let Some(Delivery::Event(e)) = s.next().await else {
        panic!("no event")
    };
    assert_eq!(
        (e.seq(), e.event(), e.source()),
        (1, "agent.created", Source::Mcp)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), s.next())
            .await
            .is_err(),
        "a failed write produced an event"
    );
}

#[tokio::test]
async fn the_first_answer_wins_and_unanswered_questions_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 100).await;
    let mut s = hub.connect(ClientInfo {
        id: "ui".into(),
        transport: "test",
        ..Default::default()
    });
    s.subscribe(
        Pattern::parse("questions").unwrap(),
        SubscribeOpts::default(),
        |_| None,
    )
    .unwrap();
    let never = tokio_util::sync::CancellationToken::new();

    let q = hub.ask("Ship it?".into(), None, Source::Mcp).await.unwrap();
    let id = q.question_id.clone();
    assert_eq!(hub.pending_questions().len(), 1);
    let waiter = tokio::spawn({
        let never = never.clone();
        async move { q.answer(Duration::from_secs(10), &never).await }
    });
    hub.answer_question(&id, json!("yes"), Source::Ws)
        .await
        .unwrap();
    let second = hub
        .answer_question(&id, json!("no"), Source::Rest)
        .await
        .unwrap_err();
    assert_eq!(second.code(), "not_found", "only the first answer counts");
    let got = waiter.await.unwrap().expect("answered");
    assert_eq!((got.answer, got.answered_by), (json!("yes"), Source::Ws));
    assert!(hub.pending_questions().is_empty());
    let mut names = Vec::new();
    while names.len() < 2 {
        if let Some(Delivery::Event(e)) = s.next().await {
            names.push(e.event().to_owned());
        }
    }
    assert_eq!(names, ["question", "answer"]);

    let q = hub
        .ask("Still there?".into(), None, Source::Mcp)
        .await
        .unwrap();
    assert!(
        q.answer(Duration::from_millis(50), &never).await.is_none(),
        "times out"
    );
    assert!(
        hub.pending_questions().is_empty(),
        "a timed-out question is withdrawn"
    );
    let mut last = String::new();
    while last != "question.expired" {
        if let Some(Delivery::Event(e)) = s.next().await {
            last = e.event().to_owned();
        }
    }
    assert!(hub.ask("   ".into(), None, Source::Mcp).await.is_err());
}
