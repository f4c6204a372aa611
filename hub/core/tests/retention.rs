//! Retention and resume limits on a real SQLite file: pruning keeps the newest events, a `since` older than what
//! is kept is not recovered, and a recent one replays exactly what is left.

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
        .events(None, Some(0), 100)
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
