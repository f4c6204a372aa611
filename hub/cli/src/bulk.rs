//! `switchboard agents create --from FILE`: agents from a JSON array or NDJSON file, sent as
//! `POST /api/agents/batch` in chunks (at most 1 000 agents and ~900 KiB each, so each is one transaction under the
//! hub's body limit), with a progress bar on a terminal.

use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use switchboard_core::limits::{MAX_BATCH_AGENTS, MAX_BODY_BYTES};

use crate::client::HubClient;

/// Largest chunk body: under the hub's 1 MiB limit with room to spare.
const MAX_CHUNK_BYTES: usize = MAX_BODY_BYTES - 128 * 1024;

/// One agent from the file, serialised, and where it came from (for messages).
struct Item {
    json: Vec<u8>,
    /// 1-based line for NDJSON, else none.
    line: Option<usize>,
}

/// Reads a JSON array of objects, or one object per line (blank lines skipped). Nothing is sent when any item is
/// not a JSON object.
fn read(path: &Path) -> Result<Vec<Item>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let items: Vec<(Value, Option<usize>)> = if text.trim_start().starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array", path.display()))?;
        v.into_iter().map(|v| (v, None)).collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map(|v| (v, Some(i + 1)))
                    .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))
            })
            .collect::<Result<_>>()?
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, (v, line))| {
            if !v.is_object() {
                bail!(
                    "{}: item {i}{}: not a JSON object",
                    path.display(),
                    at_line(line)
                );
            }
            Ok(Item {
                json: serde_json::to_vec(&v)?,
                line,
            })
        })
        .collect()
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Splits into chunks of at most [`MAX_BATCH_AGENTS`] items and [`MAX_CHUNK_BYTES`] bytes of body.
fn chunks(items: &[Item]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 2);
    for (i, it) in items.iter().enumerate() {
        let size = it.json.len() + 1;
        if i > start && (i - start == MAX_BATCH_AGENTS || bytes + size > MAX_CHUNK_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 2);
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(start..items.len());
    }
    out
}

/// Creates every agent in `path`; returns `{created, chunks, ids}`. A refused chunk stops the run: the chunks
/// before it stay created (each is its own transaction), and the error names the item's index and line.
///
/// # Errors
/// A file that cannot be read or parsed (nothing sent), or the hub's refusal of a chunk.
pub async fn create_from(client: &HubClient, path: &Path) -> Result<Value> {
    let items = read(path)?;
    if items.is_empty() {
        bail!("{}: no agents in the file", path.display());
    }
    let parts = chunks(&items);
    let bar = ProgressBar::new(items.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} agents  {elapsed_precise} (eta {eta})")
            .expect("a valid template"),
    );
    let mut ids = Vec::with_capacity(items.len());
    for (k, r) in parts.iter().enumerate() {
        let mut body = Vec::with_capacity(r.len() * 64);
        body.push(b'[');
        for (n, it) in items[r.clone()].iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&it.json);
        }
        body.push(b']');
        let res = client.post_raw("/api/agents/batch", body).await;
        let v = match res {
            Ok(v) => v,
            Err(e) => {
                bar.abandon();
                // `[537].name: …` in a chunk is the file's item start + 537.
                let text = e.to_string();
                let global = text
                    .split_once("[")
                    .and_then(|(_, rest)| rest.split_once(']'))
                    .and_then(|(n, _)| n.parse::<usize>().ok())
                    .map(|n| {
                        let i = r.start + n;
                        format!("; that is item {i}{} of the file", at_line(items[i].line))
                    })
                    .unwrap_or_default();
                bail!(
                    "{text}{global}. The {} agents of the {k} chunk(s) before it were created; none of this chunk or after it",
                    ids.len()
                );
            }
        };
        for a in v["agents"].as_array().into_iter().flatten() {
            ids.push(a["id"].clone());
        }
        bar.inc(r.len() as u64);
    }
    bar.finish_and_clear();
    Ok(json!({"created": ids.len(), "chunks": parts.len(), "ids": ids}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(bytes: usize) -> Item {
        Item {
            json: vec![b' '; bytes],
            line: None,
        }
    }

    #[test]
    fn chunks_by_count_and_by_bytes() {
        let many: Vec<Item> = (0..2500).map(|_| item(10)).collect();
        assert_eq!(chunks(&many), vec![0..1000, 1000..2000, 2000..2500]);
        let big: Vec<Item> = (0..40).map(|_| item(60 * 1024)).collect();
        let c = chunks(&big);
        assert!(
            c.len() > 1
                && c.iter()
                    .all(|r| r.len() * (60 * 1024 + 1) < MAX_CHUNK_BYTES)
        );
        assert_eq!(c.iter().map(ExactSizeIterator::len).sum::<usize>(), 40);
        assert_eq!(chunks(&[]), Vec::<std::ops::Range<usize>>::new());
    }
}
