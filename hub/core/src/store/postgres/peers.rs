//! What the hubs sharing a database tell each other about their connections. Presence and subscriber counts live
//! in each hub's memory. Every second, each hub replaces its rows in `hub_channels` (its occupied channels, with
//! presence members) and stamps `hub_seen`. It then reads the rows of the other hubs seen in the last
//! [`LIVE`]. The channels API adds that cached view to its own, so it is at most a couple of seconds stale. The
//! rows of a hub unseen for [`FORGET`] (SIGKILLed, say) are removed by whichever hub shares next.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::bus::ChannelSnapshot;
use crate::error::{Error, Result};
use crate::presence::PresenceMember;

/// A hub counts as live this long after it last shared.
pub(super) const LIVE: Duration = Duration::from_secs(5);

/// A hub unseen this long has its rows removed.
const FORGET: Duration = Duration::from_secs(60);

/// Replaces hub `me`'s rows with `mine`, and returns the other live hubs' rows.
pub(super) async fn share(
    pool: &Pool,
    me: &str,
    mine: &[ChannelSnapshot],
) -> Result<Vec<ChannelSnapshot>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO hub_seen (hub, seen_at) VALUES ($1, now())
         ON CONFLICT (hub) DO UPDATE SET seen_at = now()",
        &[&me],
    )
    .await?;
    tx.execute("DELETE FROM hub_channels WHERE hub = $1", &[&me])
        .await?;
    if !mine.is_empty() {
        let names: Vec<&str> = mine.iter().map(|c| c.name.as_str()).collect();
        let counts: Vec<i32> = mine
            .iter()
            .map(|c| i32::try_from(c.subscribers).unwrap_or(i32::MAX))
            .collect();
        let members: Vec<Option<String>> = mine
            .iter()
            .map(|c| c.members.as_ref().map(serde_json::to_string).transpose())
            .collect::<Result<_, _>>()
            .map_err(Error::internal)?;
        tx.execute(
            "INSERT INTO hub_channels (hub, channel, subscribers, members)
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[])",
            &[&me, &names, &counts, &members],
        )
        .await?;
    }
    let forget = format!("{} seconds", FORGET.as_secs());
    tx.execute(
        "DELETE FROM hub_seen WHERE seen_at < now() - $1::text::interval",
        &[&forget],
    )
    .await?;
    let live = format!("{} seconds", LIVE.as_secs());
    let rows = tx
        .query(
            "SELECT c.channel, c.subscribers, c.members FROM hub_channels c JOIN hub_seen s USING (hub)
             WHERE s.hub <> $1 AND s.seen_at > now() - $2::text::interval",
            &[&me, &live],
        )
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            let members: Option<String> = r.try_get(2)?;
            Ok(ChannelSnapshot {
                name: r.try_get(0)?,
                subscribers: usize::try_from(r.try_get::<_, i32>(1)?).unwrap_or(0),
                members: members
                    .map(|m| serde_json::from_str::<Vec<PresenceMember>>(&m))
                    .transpose()
                    .map_err(Error::internal)?,
            })
        })
        .collect()
}

/// Removes hub `me`'s rows.
pub(super) async fn unshare(pool: &Pool, me: &str) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute("DELETE FROM hub_seen WHERE hub = $1", &[&me])
        .await?;
    Ok(())
}
