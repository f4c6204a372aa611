//! The core on a real SQLite file (or, in the suite's PostgreSQL pass, a real PostgreSQL database): retention (on
//! its schedule, in paused time) and resume limits, failed writes, questions, and the caller rules that no
//! transport can skip.
//!
//! One file past 500 lines: every test opens a hub the same way and shares the small helpers above them (and, with
//! properties.rs, those in tests/support).

mod support;

use support::{WAIT, next_event};

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{
    Ask, Caller, ClientInfo, EventsQuery, Hub, HubConfig, NewAgent, NewEvent, Pattern, Principal,
    RequestKey, Resume, Retention, Session, Source, StoreConfig,
};
use tokio_util::sync::CancellationToken;

/// The defaults over `dir`; in the suite's PostgreSQL pass (`SWITCHBOARD_TEST_STORE`, scripts/test.sh) with a
/// database of the dir's own, so a reopen on the same dir finds its data.
fn config(dir: &std::path::Path) -> HubConfig {
    use std::hash::{Hash, Hasher};
    let mut cfg = HubConfig::new(dir);
    if let Ok(base) = std::env::var("SWITCHBOARD_TEST_STORE") {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        let url = format!("{}/sb_{:016x}", base.trim_end_matches('/'), h.finish());
        cfg.store = StoreConfig::parse(&url).unwrap();
    }
    cfg
}

async fn hub(dir: &std::path::Path, max_events: u64) -> Hub {
    let mut cfg = config(dir);
    cfg.retention = Retention {
        max_events,
        max_age: Duration::from_secs(3600),
    };
    Hub::open(cfg).await.unwrap()
}

fn owner(hub: &Hub) -> Caller {
    hub.caller(Principal::Owner, Source::System)
}

async fn publish(c: &Caller, n: u64) {
    for i in 0..n {
        c.publish(NewEvent::new("c", "e", json!(i))).await.unwrap();
    }
}

/// A connection following `pattern` from `since`.
fn follow(c: &Caller, pattern: &str, since: Option<u64>) -> Session {
    c.follow(
        ClientInfo::new("test"),
        Some(Pattern::parse(pattern).unwrap()),
        &Resume { since, epoch: None },
    )
    .unwrap()
}

async fn seqs(c: &Caller, since: u64) -> Vec<u64> {
    let q = EventsQuery {
        since: Some(since),
        ..Default::default()
    };
    c.events(q)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq())
        .collect()
}

#[tokio::test]
async fn prune_keeps_the_newest_and_limits_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 5).await;
    let c = owner(&hub);
    publish(&c, 12).await;
    assert_eq!(hub.prune().await.unwrap(), 7);
    assert_eq!(
        hub.prune().await.unwrap(),
        0,
        "pruning again removes nothing"
    );
    assert_eq!(seqs(&c, 0).await, [8, 9, 10, 11, 12]);

    let s = c
        .follow(ClientInfo::new("test"), None, &Resume::default())
        .unwrap();
    let old = s
        .subscribe(Pattern::parse("c").unwrap(), &Resume::after(3), |_| None)
        .unwrap();
    assert_eq!(old.recovered, Some(false), "events 4..7 are gone");
    drop(s);
    let mut s = follow(&c, "c", Some(9));
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(next_event(&mut s).await.seq());
    }
    assert_eq!(got, [10, 11, 12]);
    drop(s);
    hub.shutdown().await;

    // The log's position and the prune mark survive a restart; seq is never reused.
    let hub = self::hub(tmp.path(), 5).await;
    assert_eq!(hub.last_seq(), 12);
    hub.prune().await.unwrap();
    publish(&owner(&hub), 1).await;
    assert_eq!(hub.last_seq(), 13);
    hub.shutdown().await;
}

/// Keeps the paused clock from auto-advancing until dropped: tokio does not auto-advance while a blocking task
/// runs (documented under `tokio::time::pause`). Writes wait on the store's own thread, which tokio cannot see.
struct HoldClock(Option<std::sync::mpsc::Sender<()>>);

fn hold_clock() -> HoldClock {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    HoldClock(Some(tx))
}

impl Drop for HoldClock {
    fn drop(&mut self) {
        self.0.take();
    }
}

#[tokio::test(start_paused = true)]
async fn retention_runs_at_start_and_then_on_its_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.retention.max_events = 5;
    cfg.retention_every = Duration::from_secs(60);
    let hub = Hub::open(cfg).await.unwrap();
    let c = owner(&hub);
    let hold = hold_clock();
    publish(&c, 12).await;
    let stop = CancellationToken::new();
    let task = hub.spawn_retention(stop.clone());
    // The first run is at once.
    while seqs(&c, 0).await.len() != 5 {
        tokio::task::yield_now().await;
    }
    publish(&c, 3).await;
    drop(hold);
    tokio::time::sleep(Duration::from_secs(59)).await;
    let hold = hold_clock();
    assert_eq!(
        seqs(&c, 0).await,
        (8..=15).collect::<Vec<_>>(),
        "not before the minute is up"
    );
    drop(hold);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _hold = hold_clock();
    let deadline = std::time::Instant::now() + WAIT;
    while seqs(&c, 0).await != [11, 12, 13, 14, 15] {
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run at 60 s"
        );
        tokio::task::yield_now().await;
    }
    stop.cancel();
    task.await.unwrap();
    hub.shutdown().await;
}

/// An `Idempotency-Key` answers its first outcome for 24 hours, by the hub's clock; after that the same request is
/// a new one.
#[tokio::test(start_paused = true)]
async fn an_idempotency_key_expires_after_24_hours() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 1000).await;
    let key = || RequestKey::new("k-day", "POST", "/api/agents", b"{\"name\":\"a\"}").unwrap();
    let keyed = || owner(&hub).with_idempotency_key(key());
    let new = || NewAgent {
        name: "a".into(),
        ..Default::default()
    };
    let hold = hold_clock();
    let first = keyed().create_agent(new()).await.unwrap();
    drop(hold);
    tokio::time::advance(Duration::from_secs(24 * 3600 - 60)).await;
    let hold = hold_clock();
    let again = keyed();
    assert_eq!(
        again.create_agent(new()).await.unwrap(),
        first,
        "a minute before the day is up"
    );
    assert!(again.replayed());
    drop(hold);
    tokio::time::advance(Duration::from_secs(61)).await;
    let _hold = hold_clock();
    let later = keyed();
    let second = later.create_agent(new()).await.unwrap();
    assert_ne!(
        second.id, first.id,
        "a day later the key is forgotten: a new agent"
    );
    assert!(!later.replayed());
    // And the new outcome is the one kept from then on.
    assert_eq!(keyed().create_agent(new()).await.unwrap(), second);
    let agents = owner(&hub)
        .list_agents(Default::default())
        .await
        .unwrap()
        .agents;
    assert_eq!(agents.len(), 2);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_failed_write_leaves_no_row_and_no_event() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 100).await;
    let c = hub.caller(Principal::Owner, Source::Mcp);
    let mut s = follow(&c, "*", None);
    let bad: switchboard_core::AgentPatch =
        serde_json::from_value(json!({"status": "NOT OK"})).unwrap();
    let a = c
        .create_agent(serde_json::from_value(json!({"name": "a"})).unwrap())
        .await
        .unwrap();
    assert!(c.update_agent(&a.id, bad, None).await.is_err());
    assert!(
        c.update_agent(&a.id, Default::default(), Some(9))
            .await
            .is_err()
    );
    assert_eq!(c.get_agent(&a.id).await.unwrap().version, 1);
    assert_eq!(hub.last_seq(), 1);
    let e = next_event(&mut s).await;
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

fn ask(q: &str, channel: Option<&str>, timeout: Duration) -> Ask {
    Ask {
        channel: channel.map(str::to_owned),
        ..Ask::new(q, timeout)
    }
}

#[tokio::test]
async fn the_first_answer_wins_and_unanswered_questions_are_withdrawn() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 100).await;
    let ide = hub.caller(Principal::Owner, Source::Mcp);
    let mut s = follow(&owner(&hub), "questions", None);
    let never = CancellationToken::new();

    let q = ide
        .ask(ask("Ship it?", None, Duration::from_secs(10)))
        .await
        .unwrap();
    let id = q.question_id.clone();
    assert_eq!(ide.questions().len(), 1);
    let waiter = tokio::spawn({
        let never = never.clone();
        async move { q.answer(&never).await }
    });
    let ws = hub.caller(Principal::Anonymous, Source::Ws);
    ws.answer(&id, json!("yes")).await.unwrap();
    let second = hub
        .caller(Principal::Anonymous, Source::Rest)
        .answer(&id, json!("no"))
        .await
        .unwrap_err();
    assert_eq!(second.code(), "not_found", "only the first answer counts");
    let got = tokio::time::timeout(WAIT, waiter)
        .await
        .unwrap()
        .unwrap()
        .expect("answered");
    assert_eq!((got.answer, got.answered_by), (json!("yes"), Source::Ws));
    assert!(ide.questions().is_empty());
    let (asked, answered) = (next_event(&mut s).await, next_event(&mut s).await);
    assert_eq!(
        (asked.event(), answered.event()),
        ("question", "question.answered")
    );
    let data: Value = serde_json::from_str(answered.data().get()).unwrap();
    assert_eq!(
        data,
        json!({"question_id": id, "answer": "yes", "answered_by": "ws"})
    );

    let q = ide
        .ask(ask("Still there?", None, Duration::from_millis(50)))
        .await
        .unwrap();
    assert!(q.answer(&never).await.is_none(), "times out");
    assert!(
        ide.questions().is_empty(),
        "a timed-out question is withdrawn"
    );
    assert_eq!(next_event(&mut s).await.event(), "question");
    let w = next_event(&mut s).await;
    assert_eq!(w.event(), "question.withdrawn");
    assert!(w.data().get().contains(r#""reason":"timeout""#));
    for bad in [
        ask("   ", None, WAIT),
        Ask {
            options: Some(vec![]),
            ..ask("pick", None, WAIT)
        },
        Ask {
            options: Some(vec!["a".into(), "a".into()]),
            ..ask("pick", None, WAIT)
        },
        Ask {
            key: Some(String::new()),
            ..ask("k", None, WAIT)
        },
    ] {
        assert_eq!(ide.ask(bad).await.unwrap_err().code(), "invalid_field");
    }
}

#[tokio::test]
async fn questions_outlive_the_askers_call_and_a_restart_and_keys_ask_once() {
    let tmp = tempfile::tempdir().unwrap();
    let never = CancellationToken::new();
    let first_id;
    {
        let hub = hub(tmp.path(), 100).await;
        let ide = hub.caller(Principal::Owner, Source::Mcp);
        let keyed = Ask {
            key: Some("deploy-42".into()),
            options: Some(vec!["yes".into(), "no".into()]),
            ..ask("Deploy?", None, Duration::from_secs(60))
        };
        let q = ide.ask(keyed.clone()).await.unwrap();
        assert!(!q.joined);
        first_id = q.question_id.clone();
        // The asker's call is cut off: the question stays pending.
        let cut = CancellationToken::new();
        cut.cancel();
        assert!(q.answer(&cut).await.is_none());
        assert_eq!(ide.questions().len(), 1);
        // Asking again with the key joins it.
        let again = ide.ask(keyed).await.unwrap();
        assert!(again.joined);
        assert_eq!(again.question_id, first_id);
        assert_eq!(ide.questions().len(), 1, "asked once");
        hub.shutdown().await;
    }
    // After a restart it is still pending, with its options, and answerable.
    let hub = hub(tmp.path(), 100).await;
    let ide = hub.caller(Principal::Owner, Source::Mcp);
    let listed = ide.questions();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].question_id, first_id);
    assert_eq!(
        listed[0].options.as_deref(),
        Some(&["yes".to_owned(), "no".to_owned()][..])
    );
    hub.caller(Principal::Owner, Source::Rest)
        .answer(&first_id, json!("yes"))
        .await
        .unwrap();
    // The same key now gets that answer at once, without a new question.
    let keyed = Ask {
        key: Some("deploy-42".into()),
        ..ask("Deploy?", None, Duration::from_secs(60))
    };
    let q = ide.ask(keyed).await.unwrap();
    assert!(q.joined);
    let a = tokio::time::timeout(WAIT, q.answer(&never))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.answer, a.answered_by), (json!("yes"), Source::Rest));
    assert!(ide.questions().is_empty());

    // A question whose asker is gone is withdrawn at its deadline by the background upkeep.
    let stop = CancellationToken::new();
    let task = hub.spawn_retention(stop.clone());
    let mut s = follow(&owner(&hub), "questions", None);
    let orphan = ide
        .ask(ask("Anyone?", None, Duration::from_millis(300)))
        .await
        .unwrap();
    let orphan_id = orphan.question_id.clone();
    drop(orphan);
    assert_eq!(next_event(&mut s).await.event(), "question");
    let w = tokio::time::timeout(WAIT, next_event(&mut s))
        .await
        .unwrap();
    assert_eq!(w.event(), "question.withdrawn");
    assert!(w.data().get().contains(&orphan_id));
    assert!(ide.questions().is_empty());
    stop.cancel();
    task.await.unwrap();
}

fn jwt_caller(hub: &Hub, claims: Value) -> Caller {
    let token = std::fs::read_to_string(hub.data_dir().join("token")).unwrap();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(token.trim().as_bytes()),
    )
    .unwrap();
    let p = hub.authenticate(Some(&jwt), false).unwrap();
    hub.caller(p, Source::Mcp)
}

#[tokio::test]
async fn private_questions_and_channels_stay_with_those_who_may_read_them() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(tmp.path(), 100).await;
    let owner = owner(&hub);
    let anon = hub.caller(Principal::Anonymous, Source::Rest);
    let chat = jwt_caller(
        &hub,
        json!({"sub": "u", "channels": ["chat:*"], "publish": ["chat:*"]}),
    );
    let asked = owner
        .ask(ask("the launch code?", Some("private-ops"), WAIT))
        .await
        .unwrap();
    let open = owner
        .ask(ask("lunch?", Some("chat:1"), WAIT))
        .await
        .unwrap();
    assert_eq!(owner.questions().len(), 2);
    assert_eq!(anon.questions().len(), 1, "the private question is hidden");
    assert_eq!(chat.questions()[0].question_id, open.question_id);
    let e = anon
        .answer(&asked.question_id, json!("0000"))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        "not_found",
        "a hidden question cannot be answered"
    );
    let read_only = jwt_caller(&hub, json!({"channels": ["chat:*"], "publish": []}));
    let e = read_only
        .answer(&open.question_id, json!("yes"))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        "forbidden",
        "answering is publishing on the question's channel"
    );
    assert!(chat.answer(&open.question_id, json!("yes")).await.is_ok());

    // Channels and the log, through the same reach.
    let _sub = follow(&owner, "private-ops", None);
    let _pub = follow(&anon, "chat:1", None);
    let names = |c: &Caller| c.channels().into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(names(&owner), ["chat:1", "private-ops"]);
    assert_eq!(names(&anon), ["chat:1"]);
    let all = |c: &Caller| {
        let c = c.clone();
        async move { c.events(EventsQuery::default()).await.unwrap().events }
    };
    let seen = |events: Vec<switchboard_core::Event>| {
        let mut channels: Vec<String> = events.iter().map(|e| e.channel().to_owned()).collect();
        channels.dedup();
        channels
    };
    assert_eq!(seen(all(&anon).await), ["chat:1"]);
    assert!(
        all(&owner)
            .await
            .iter()
            .any(|e| e.channel() == "private-ops")
    );
    assert_eq!(seen(all(&chat).await), ["chat:1"]);
    // A JWT cannot reach agents outside its claims; global and its own user channel it always may.
    assert_eq!(
        chat.list_agents(Default::default())
            .await
            .unwrap_err()
            .code(),
        "forbidden"
    );
    assert_eq!(
        chat.create_agent(serde_json::from_value(json!({"name": "x"})).unwrap())
            .await
            .unwrap_err()
            .code(),
        "forbidden"
    );
    let mut s = chat
        .open(
            ClientInfo::new("test"),
            &[],
            &Resume::default(),
            |_| Ok(()),
            |_, _| None,
        )
        .unwrap();
    assert_eq!(s.subscriptions().len(), 2, "global and user:u");
    owner
        .publish(NewEvent::new("user:u", "dm", json!(1)))
        .await
        .unwrap();
    assert_eq!(next_event(&mut s).await.channel(), "user:u");
    assert!(chat.hub_token().is_none() && anon.hub_token().is_none());
    assert!(owner.hub_token().is_some());
    let p = chat
        .publish(NewEvent::new("global", "x", Value::Null))
        .await;
    assert_eq!(p.unwrap_err().code(), "forbidden");
}

#[tokio::test]
async fn the_connection_cap_counts_every_session() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.bus.max_connections = 2;
    let hub = Hub::open(cfg).await.unwrap();
    let c = owner(&hub);
    let a = c
        .open(
            ClientInfo::new("ws"),
            &[],
            &Resume::default(),
            |_| Ok(()),
            |_, _| None,
        )
        .unwrap();
    let _b = c
        .follow(ClientInfo::new("mcp"), None, &Resume::default())
        .unwrap();
    let e = c
        .open(
            ClientInfo::new("sse"),
            &[],
            &Resume::default(),
            |_| Ok(()),
            |_, _| None,
        )
        .err()
        .unwrap();
    assert_eq!(e.code(), "too_many_connections");
    drop(a);
    assert!(
        c.open(
            ClientInfo::new("sse"),
            &[],
            &Resume::default(),
            |_| Ok(()),
            |_, _| None
        )
        .is_ok()
    );
}
