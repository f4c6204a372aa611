//! Property tests (proptest) of the model's invariants, brief enough for CI: channel patterns and their Pusher
//! spelling; agent merge-patches against RFC 7396 itself; and the log: whatever was published, a connection that
//! resumes from any `seq` gets exactly the events after it that its pattern matches, in order, then the live
//! ones, and reading the log in pages gives the same. The hub ones run on a real SQLite file.

mod support;

use support::next_event;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use switchboard_core::model::check_channel;
use switchboard_core::pusher::{from_wire, to_wire};
use switchboard_core::{
    AgentPatch, Caller, ClientInfo, Delivery, EventsQuery, Hub, HubConfig, NewAgent, NewEvent,
    Pattern, Principal, Resume, Source,
};

/// Channel names from the allowed characters, biased towards the ones with meaning (`:`, `;`, `=`, `-`).
fn channel() -> impl Strategy<Value = String> {
    "[a-c:;=_-]{1,10}"
}

/// A pattern: a channel, a prefix with `*`, or `*`.
fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        channel(),
        "[a-c:;=_-]{0,6}".prop_map(|p| format!("{p}*")),
        Just("*".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn patterns_match_exactly_what_they_cover(p in pattern(), q in pattern(), c in channel()) {
        let p = Pattern::parse(&p).unwrap();
        let q = Pattern::parse(&q).unwrap();
        prop_assert!(check_channel("channel", &c).is_ok());
        let exact = Pattern::parse(&c).unwrap();
        // Covering a channel's own pattern is matching the channel.
        prop_assert_eq!(p.covers(&exact), p.matches(&c));
        // Covering is transitive through a match: what q matches, a pattern covering q matches too.
        if p.covers(&q) && q.matches(&c) {
            prop_assert!(p.matches(&c));
        }
        prop_assert_eq!(Pattern::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn a_channel_survives_its_pusher_spelling(c in channel()) {
        let wire = to_wire(&c);
        prop_assert!(!wire.contains(':'), "Pusher channel names have no ':'");
        prop_assert_eq!(from_wire(&wire), Some(c));
    }
}

/// RFC 7396 §2, as written there: the oracle the hub's merge is checked against.
fn rfc7396(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut t = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            let merged = rfc7396(t.get(k).unwrap_or(&Value::Null), v);
            t.insert(k.clone(), merged);
        }
    }
    Value::Object(t)
}

/// Small JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-d]", json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn owner(hub: &Hub) -> Caller {
    hub.caller(Principal::Owner, Source::System)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn an_agent_config_patch_is_rfc_7396_and_idempotent(config in json_object(), patch in json_object()) {
        let rt = runtime();
        let tmp = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let hub = Hub::open(HubConfig::new(tmp.path())).await.unwrap();
            let c = owner(&hub);
            // The patch's target is the config as the hub stored it.
            let mut new: NewAgent = serde_json::from_value(json!({"name": "p"})).unwrap();
            new.config = Some(config.clone());
            let agent = c.create_agent(new).await.unwrap();
            let stored = Value::Object(agent.config.clone());
            let p: AgentPatch = serde_json::from_value(json!({"config": patch})).unwrap();
            let once = c.update_agent(&agent.id, p.clone(), None).await.unwrap();
            let expected = rfc7396(&stored, &Value::Object(patch.clone()));
            prop_assert_eq!(Value::Object(once.config.clone()), expected);
            let twice = c.update_agent(&agent.id, p, None).await.unwrap();
            prop_assert_eq!(twice.config, once.config);
            hub.shutdown().await;
            Ok(())
        })?;
    }
}

const CHANNELS: [&str; 3] = ["a:1", "a:2", "b:1"];
const PATTERNS: [&str; 5] = ["*", "a:*", "a:1", "b:1", "c:*"];
proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn resuming_from_any_seq_gives_exactly_what_followed_in_order(
        before in prop::collection::vec(0..CHANNELS.len(), 0..40),
        after in prop::collection::vec(0..CHANNELS.len(), 0..10),
        pattern in 0..PATTERNS.len(),
        since_pick in 0u64..50,
        page in 1usize..7,
    ) {
        let rt = runtime();
        let tmp = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let hub = Hub::open(HubConfig::new(tmp.path())).await.unwrap();
            let c = owner(&hub);
            let mut log: Vec<(u64, &str)> = Vec::new();
            for (i, &ch) in before.iter().enumerate() {
                let p = c.publish(NewEvent::new(CHANNELS[ch], "e", json!(i))).await.unwrap();
                log.push((p.seq, CHANNELS[ch]));
            }
            let since = since_pick.min(log.len() as u64);
            let pat = Pattern::parse(PATTERNS[pattern]).unwrap();
            let mut s = c
                .follow(ClientInfo::new("prop"), Some(pat.clone()), &Resume { since: Some(since), epoch: None })
                .unwrap();
            for (i, &ch) in after.iter().enumerate() {
                let p = c.publish(NewEvent::new(CHANNELS[ch], "e", json!(100 + i))).await.unwrap();
                log.push((p.seq, CHANNELS[ch]));
            }
            // seqs are dense and increasing: 1..=n.
            let all: Vec<u64> = log.iter().map(|(s, _)| *s).collect();
            prop_assert_eq!(all, (1..=log.len() as u64).collect::<Vec<_>>());
            let want: Vec<u64> = log
                .iter()
                .filter(|(seq, ch)| *seq > since && pat.matches(ch))
                .map(|(seq, _)| *seq)
                .collect();
            let mut got = Vec::with_capacity(want.len());
            while got.len() < want.len() {
                got.push(next_event(&mut s).await.seq());
            }
            prop_assert_eq!(&got, &want);
            // Nothing more: one more write, on a channel nobody matches but `*`, is the next thing seen or nothing.
            let extra = c.publish(NewEvent::new("z:9", "e", json!(0))).await.unwrap();
            if pat.matches("z:9") {
                prop_assert_eq!(next_event(&mut s).await.seq(), extra.seq);
            }
            prop_assert!(s.try_next().is_none_or(|d| matches!(d, Delivery::Control(_))));

            // The log read in pages of `page` from `since` is the same sequence.
            let mut paged = Vec::new();
            let mut from = since;
            loop {
                let q = EventsQuery {
                    channel: Some(PATTERNS[pattern].to_owned()),
                    since: Some(from),
                    limit: Some(page),
                    ..Default::default()
                };
                let got = c.events(q).await.unwrap();
                let Some(last) = got.events.last() else { break };
                from = last.seq();
                paged.extend(got.events.iter().map(|e| e.seq()));
            }
            let mut want_all = want.clone();
            if pat.matches("z:9") {
                want_all.push(extra.seq);
            }
            prop_assert_eq!(paged, want_all);
            hub.shutdown().await;
            Ok(())
        })?;
    }
}
