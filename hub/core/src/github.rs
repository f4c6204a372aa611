//! GitHub webhooks (SPEC §3, `POST /api/webhooks/github`): the `X-Hub-Signature-256` check (HMAC-SHA256 of the raw
//! body with the webhook secret, compared in constant time) and the mapping of `pull_request`, `issues`,
//! `issue_comment` and `push` deliveries to events on `project:<owner>.<repo>` with a trimmed payload: what a UI
//! needs to show, never the whole delivery.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::auth::Secret;
use crate::error::{Error, Result};

/// Longest commit message or PR/issue title or comment body kept in an event, in characters.
const MAX_TEXT: usize = 280;

/// Checks `X-Hub-Signature-256: sha256=<hex>` against `body`.
///
/// # Errors
/// `Unauthorized` when no secret is configured, the header is missing or malformed, or the signature is wrong.
pub fn verify(secret: Option<&Secret>, body: &[u8], header: Option<&str>) -> Result<()> {
    let secret = secret.ok_or_else(|| {
        Error::unauthorized("no GitHub webhook secret is configured (--github-secret)")
    })?;
    let header = header
        .ok_or_else(|| Error::unauthorized("the delivery is not signed (X-Hub-Signature-256)"))?;
    let sig = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| Error::unauthorized("X-Hub-Signature-256 is not sha256=<hex>"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&sig)
        .map_err(|_| Error::unauthorized("the signature does not match the secret"))
}

/// What a delivery becomes: an event on a channel, or nothing (with why).
#[derive(Debug, PartialEq)]
pub enum Mapped {
    /// Publish `event` with `data` on `channel`.
    Publish {
        /// `project:<owner>.<repo>`.
        channel: String,
        /// `pr.opened`, `issue.closed`, `push`, …
        event: String,
        /// The trimmed payload.
        data: Value,
    },
    /// Answered 200, nothing published.
    Ignored(String),
}

fn text(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if s.chars().count() > MAX_TEXT => {
            Value::String(s.chars().take(MAX_TEXT).collect::<String>() + "…")
        }
        Some(s) => Value::String(s.to_owned()),
        None => Value::Null,
    }
}

fn login(v: &Value) -> Value {
    v.get("login").cloned().unwrap_or(Value::Null)
}

/// Maps a delivery of type `kind` (`X-GitHub-Event`) to an event.
///
/// # Errors
/// `Invalid` when a mapped delivery lacks what every such delivery has (`repository.full_name`, `action`).
pub fn map(kind: &str, p: &Value) -> Result<Mapped> {
    if kind == "ping" {
        return Ok(Mapped::Ignored("ping".into()));
    }
    if !matches!(kind, "pull_request" | "issues" | "issue_comment" | "push") {
        return Ok(Mapped::Ignored(format!(
            "{kind} deliveries are not mapped to events"
        )));
    }
    let repo = p
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("repository.full_name", "missing"))?;
    // `owner/repo` → `project:owner.repo`: both are [A-Za-z0-9._-], all channel characters.
    let channel = format!("project:{}", repo.replacen('/', ".", 1));
    let action = || {
        p.get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("action", "missing"))
    };
    let sender = login(&p["sender"]);
    let (event, data) = match kind {
        "pull_request" => {
            let pr = &p["pull_request"];
            let merged = pr["merged"].as_bool().unwrap_or(false);
            let action = action()?;
            let event = match action {
                "opened" | "reopened" => "pr.opened",
                "closed" if merged => "pr.merged",
                "closed" => "pr.closed",
                _ => "pr.updated",
            };
            let data = json!({
                "repo": repo, "action": action, "number": p["number"].as_u64().or(pr["number"].as_u64()),
                "title": text(&pr["title"]), "state": pr["state"], "draft": pr["draft"], "merged": merged,
                "url": pr["html_url"], "author": login(&pr["user"]), "sender": sender,
                "head": pr.pointer("/head/ref"), "base": pr.pointer("/base/ref"),
            });
            (event.to_owned(), data)
        }
        "issues" => {
            let issue = &p["issue"];
            let action = action()?;
            let labels: Vec<Value> = issue["labels"]
                .as_array()
                .map(|l| l.iter().map(|x| x["name"].clone()).collect())
                .unwrap_or_default();
            let data = json!({
                "repo": repo, "action": action, "number": issue["number"], "title": text(&issue["title"]),
                "state": issue["state"], "url": issue["html_url"], "author": login(&issue["user"]),
                "labels": labels, "sender": sender,
            });
            (format!("issue.{action}"), data)
        }
        "issue_comment" => {
            let issue = &p["issue"];
            let comment = &p["comment"];
            let action = action()?;
            let data = json!({
                "repo": repo, "action": action, "number": issue["number"], "title": text(&issue["title"]),
                "is_pull_request": issue.get("pull_request").is_some(),
                "comment": {"id": comment["id"], "url": comment["html_url"], "author": login(&comment["user"]),
                            "body": text(&comment["body"])},
                "sender": sender,
            });
            let event = if action == "created" {
                "issue.commented".to_owned()
            } else {
                format!("issue.comment_{action}")
            };
            (event, data)
        }
        _ => {
            let commits = p["commits"].as_array().map_or(0, Vec::len);
            let head = &p["head_commit"];
            let data = json!({
                "repo": repo, "ref": p["ref"], "before": p["before"], "after": p["after"],
                "created": p["created"], "deleted": p["deleted"], "forced": p["forced"],
                "commits": commits, "compare": p["compare"],
                "pusher": p.pointer("/pusher/name"), "sender": sender,
                "head_commit": if head.is_object() {
                    json!({"id": head["id"], "message": text(&head["message"]), "url": head["url"],
                           "author": head.pointer("/author/name")})
                } else { Value::Null },
            });
            ("push".to_owned(), data)
        }
    };
    Ok(Mapped::Publish {
        channel,
        event,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published example ("Validating webhook deliveries").
    #[test]
    fn githubs_test_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify(Some(&secret), b"Hello, World!", Some(sig)).is_ok());
        let forged = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18";
        for (secret, body, header) in [
            (Some(&secret), &b"Hello, World!"[..], Some(forged)),
            (Some(&secret), &b"Hello, World?"[..], Some(sig)),
            (Some(&secret), &b"Hello, World!"[..], None),
            (Some(&secret), &b"Hello, World!"[..], Some("sha1=abc")),
            (Some(&secret), &b"Hello, World!"[..], Some("sha256=zz")),
            (None, &b"Hello, World!"[..], Some(sig)),
        ] {
            let e = verify(secret, body, header).unwrap_err();
            assert_eq!(e.code(), "unauthorized", "{header:?}");
        }
    }

    fn pr(action: &str, merged: bool) -> Value {
        json!({"action": action, "number": 7, "sender": {"login": "ada"},
               "repository": {"full_name": "octo-org/hello-world"},
               "pull_request": {"number": 7, "title": "Fix", "state": "closed", "merged": merged,
                                "html_url": "https://github.com/octo-org/hello-world/pull/7",
                                "user": {"login": "ada"}, "head": {"ref": "fix"}, "base": {"ref": "main"}}})
    }

    #[test]
    fn pull_requests_by_action() {
        for (action, merged, event) in [
            ("opened", false, "pr.opened"),
            ("reopened", false, "pr.opened"),
            ("synchronize", false, "pr.updated"),
            ("closed", false, "pr.closed"),
            ("closed", true, "pr.merged"),
        ] {
            let Mapped::Publish {
                channel,
                event: got,
                data,
            } = map("pull_request", &pr(action, merged)).unwrap()
            else {
                panic!("{action} should publish");
            };
            assert_eq!(channel, "project:octo-org.hello-world");
            assert_eq!(got, event);
            assert_eq!(data["number"], 7);
            assert_eq!(data["head"], "fix");
        }
    }

    #[test]
    fn long_text_is_trimmed_and_unmapped_kinds_are_ignored() {
        let long = "x".repeat(1000);
        let p = json!({"action": "opened", "repository": {"full_name": "a/b"},
                       "issue": {"number": 1, "title": long, "labels": [{"name": "bug"}]}});
        let Mapped::Publish { event, data, .. } = map("issues", &p).unwrap() else {
            panic!("issues publish");
        };
        assert_eq!(event, "issue.opened");
        assert_eq!(
            data["title"].as_str().unwrap().chars().count(),
            MAX_TEXT + 1
        );
        assert_eq!(data["labels"], json!(["bug"]));
        assert!(matches!(map("star", &p).unwrap(), Mapped::Ignored(_)));
        assert_eq!(
            map("ping", &json!({})).unwrap(),
            Mapped::Ignored("ping".into())
        );
        assert_eq!(map("push", &json!({})).unwrap_err().code(), "invalid_field");
    }
}
