//! Exact per-minute aggregates: for each minute touched by new raw events ("dirty"), the sink recomputes the
//! minute's absolute values from the deduplicated raw events and inserts them with a higher `version`; readers use
//! FINAL. Replays re-insert identical raw rows (deduplicated by the sorting key) and recompute the same values, so
//! nothing is counted twice. See `schemas/clickhouse/README.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::error::{AnalyticsError, Result};
use crate::rows::{EngagementRow, FunnelRow, SharesRow};

pub(crate) const FUNNEL_TYPES: &str = "'referral.link.clicked', 'referral.conversion.started', \
     'referral.conversion.completed', 'referral.reward.earned'";
pub(crate) const ENGAGEMENT_TYPES: &str = "'social.share.engaged', 'testimonial.engaged'";

/// Minutes (Unix seconds, multiples of 60) waiting for a recomputation.
#[derive(Debug, Default)]
pub(crate) struct DirtyMinutes(BTreeSet<i64>);

impl DirtyMinutes {
    pub(crate) fn insert(&mut self, minute: i64) {
        debug_assert_eq!(minute.rem_euclid(60), 0);
        self.0.insert(minute);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Up to `n` of the oldest minutes, left in the set until [`DirtyMinutes::remove`].
    pub(crate) fn first(&self, n: usize) -> Vec<i64> {
        self.0.iter().take(n).copied().collect()
    }

    /// The minutes before `cutoff`, ascending.
    pub(crate) fn before(&self, cutoff: i64) -> Vec<i64> {
        self.0.range(..cutoff).copied().collect()
    }

    pub(crate) fn remove(&mut self, minutes: &[i64]) {
        for m in minutes {
            self.0.remove(m);
        }
    }
}

/// `<time column> within [first, last + 60) AND its minute IN (...)`: uses the primary key, reads only the listed
/// minutes.
fn minute_filter(column: &str, minutes: &[i64]) -> String {
    let (Some(first), Some(last)) = (minutes.first(), minutes.last()) else {
        return "0".to_owned();
    };
    let mut list = String::new();
    for (i, m) in minutes.iter().enumerate() {
        if i > 0 {
            list.push_str(", ");
        }
        let _ = write!(list, "{m}");
    }
    format!(
        "{column} >= toDateTime({first}) AND {column} < toDateTime({end}) \
         AND toUInt32(toStartOfMinute({column})) IN ({list})",
        end = last + 60
    )
}

/// The three `INSERT ... SELECT` statements that recompute `minutes` (sorted) at `version`.
/// The tables [`recompute_statements`] writes, each versioned by its `version` column.
pub(crate) const AGGREGATE_TABLES: [&str; 3] = ["referral_funnel_1m", "engagement_1m", "shares_1m"];

pub(crate) fn recompute_statements(minutes: &[i64], version: u64) -> Vec<String> {
    let raw = minute_filter("event_time", minutes);
    let agg = minute_filter("minute", minutes);
    // Dedup key = sorting key of raw_events (minute, source, id): the same rows FINAL would keep.
    let funnel = format!(
        "INSERT INTO referral_funnel_1m \
         (minute, program_id, clicks, conversions_started, conversions_completed, rewards, reward_amount, version) \
         SELECT minute, program_id, sum(c), sum(s), sum(d), sum(r), toDecimal64(sum(amt), 4), {version} FROM ( \
           SELECT minute, \
             if(ev_program != '', ev_program, if(code_created <= ev_time, code_program, '')) AS program_id, \
             toUInt64(ev_type = 'referral.link.clicked') AS c, \
             toUInt64(ev_type = 'referral.conversion.started') AS s, \
             toUInt64(ev_type = 'referral.conversion.completed') AS d, \
             toUInt64(ev_type = 'referral.reward.earned') AS r, \
             if(ev_type = 'referral.reward.earned', toDecimal64(ev_amount, 4), toDecimal64(0, 4)) AS amt \
           FROM ( \
             SELECT toStartOfMinute(event_time) AS minute, source, id, any(type) AS ev_type, \
               any(event_time) AS ev_time, any(program_id) AS ev_program, any(referral_id) AS ev_referral, \
               any(amount) AS ev_amount \
             FROM raw_events WHERE {raw} AND type IN ({FUNNEL_TYPES}) GROUP BY minute, source, id \
           ) ANY LEFT JOIN ( \
             SELECT code_id AS ev_referral, argMax(program_id, created_time) AS code_program, \
               min(created_time) AS code_created FROM referral_code_creations \
             WHERE code_id IN (SELECT referral_id FROM raw_events WHERE {raw} AND type IN ({FUNNEL_TYPES})) \
             GROUP BY code_id \
           ) USING ev_referral \
           UNION ALL \
           SELECT minute, program_id, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toDecimal64(0, 4) \
           FROM referral_funnel_1m WHERE {agg} \
         ) GROUP BY minute, program_id"
    );
    // An engagement counts for its share's content (its partition key is its share) when the share was created
    // at or before it, else for the content it names, if any, as in the live state; zero rows overwrite what a
    // recomputation before the share came counted elsewhere.
    let engagement = format!(
        "INSERT INTO engagement_1m (minute, content_id, engagement_type, engagements, version) \
         SELECT minute, content, engagement, sum(n), {version} FROM ( \
           SELECT minute, \
             if(share_content != '' AND share_created <= ev_time, share_content, ev_named) AS content, \
             ev_engagement AS engagement, toUInt64(1) AS n \
           FROM ( \
             SELECT toStartOfMinute(event_time) AS minute, source, id, any(event_time) AS ev_time, \
               any(content_id) AS ev_named, any(engagement_type) AS ev_engagement, \
               any(if(type = 'social.share.engaged', partition_key, '')) AS ev_share \
             FROM raw_events WHERE {raw} AND type IN ({ENGAGEMENT_TYPES}) GROUP BY minute, source, id \
           ) ANY LEFT JOIN ( \
             SELECT share_id AS ev_share, argMax(content_id, created_time) AS share_content, \
               min(created_time) AS share_created FROM share_contents \
             WHERE share_id IN (SELECT partition_key FROM raw_events \
               WHERE {raw} AND type = 'social.share.engaged') \
             GROUP BY share_id \
           ) USING ev_share \
           UNION ALL \
           SELECT minute, content_id, engagement_type, toUInt64(0) FROM engagement_1m WHERE {agg} \
         ) GROUP BY minute, content, engagement"
    );
    let shares = format!(
        "INSERT INTO shares_1m (minute, platform, content_type, shares, version) \
         SELECT minute, ev_platform, ev_content_type, count(), {version} FROM ( \
           SELECT toStartOfMinute(event_time) AS minute, source, id, any(platform) AS ev_platform, \
             any(content_type) AS ev_content_type \
           FROM raw_events WHERE {raw} AND type = 'social.share.created' GROUP BY minute, source, id \
         ) GROUP BY minute, ev_platform, ev_content_type"
    );
    vec![funnel, engagement, shares]
}

/// A difference between a stored aggregate table and its recomputation from `raw_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateMismatch {
    pub table: &'static str,
    /// Rows stored but not expected, then rows expected but not stored (Debug text, at most 10 of each).
    pub unexpected: Vec<String>,
    pub missing: Vec<String>,
}

/// Row counts of a successful [`verify_aggregates`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateCounts {
    pub funnel_rows: usize,
    pub engagement_rows: usize,
    pub shares_rows: usize,
}

/// Recomputes every per-minute aggregate from `raw_events FINAL` in SQL (independently of the sink's statements:
/// code -> program and share -> content come from the raw `referral.code.generated` and `social.share.created`
/// events) and compares with the stored tables read
/// with FINAL, rows with all counts zero left out. `Ok(Err(..))` lists the differences.
pub async fn verify_aggregates(
    client: &clickhouse::Client,
) -> Result<std::result::Result<AggregateCounts, Vec<AggregateMismatch>>> {
    let fetch_err = |e| AnalyticsError::clickhouse("verify aggregates", e);
    let funnel_expected: Vec<FunnelRow> = client
        .query(&format!(
            "SELECT minute, program_id, \
               toUInt64(countIf(type = 'referral.link.clicked')), \
               toUInt64(countIf(type = 'referral.conversion.started')), \
               toUInt64(countIf(type = 'referral.conversion.completed')), \
               toUInt64(countIf(type = 'referral.reward.earned')), \
               toDecimal64(sumIf(toDecimal64(amount, 4), type = 'referral.reward.earned'), 4), toUInt64(0) \
             FROM ( \
               SELECT toStartOfMinute(event_time) AS minute, type, amount, \
                 if(program_id != '', program_id, \
                   if(code_created <= event_time, code_program, '')) AS program_id \
               FROM raw_events FINAL ANY LEFT JOIN ( \
                 SELECT referral_id, argMax(program_id, event_time_ms) AS code_program, \
                   min(event_time) AS code_created \
                 FROM raw_events FINAL WHERE type = 'referral.code.generated' GROUP BY referral_id \
               ) USING referral_id \
               WHERE type IN ({FUNNEL_TYPES}) \
             ) GROUP BY minute, program_id ORDER BY minute, program_id"
        ))
        .fetch_all()
        .await
        .map_err(fetch_err)?;
    let funnel_stored: Vec<FunnelRow> = client
        .query(
            "SELECT minute, program_id, clicks, conversions_started, conversions_completed, rewards, \
               reward_amount, toUInt64(0) FROM referral_funnel_1m FINAL \
             WHERE clicks + conversions_started + conversions_completed + rewards > 0 \
             ORDER BY minute, program_id",
        )
        .fetch_all()
        .await
        .map_err(fetch_err)?;
    let engagement_expected: Vec<EngagementRow> = client
        .query(&format!(
            "SELECT minute, content, engagement_type, count(), toUInt64(0) FROM ( \
               SELECT toStartOfMinute(event_time) AS minute, engagement_type, \
                 if(share_content != '' AND share_created <= event_time, share_content, content_id) AS content \
               FROM ( \
                 SELECT *, if(type = 'social.share.engaged', partition_key, '') AS share_key \
                 FROM raw_events FINAL WHERE type IN ({ENGAGEMENT_TYPES}) \
               ) ANY LEFT JOIN ( \
                 SELECT visitParamExtractString(payload, 'shareId') AS share_key, \
                   argMax(content_id, event_time_ms) AS share_content, min(event_time) AS share_created \
                 FROM raw_events FINAL WHERE type = 'social.share.created' GROUP BY share_key \
               ) USING share_key \
             ) GROUP BY minute, content, engagement_type ORDER BY minute, content, engagement_type"
        ))
        .fetch_all()
        .await
        .map_err(fetch_err)?;
    let engagement_stored: Vec<EngagementRow> = client
        .query(
            "SELECT minute, content_id, engagement_type, engagements, toUInt64(0) FROM engagement_1m FINAL \
             WHERE engagements > 0 ORDER BY minute, content_id, engagement_type",
        )
        .fetch_all()
        .await
        .map_err(fetch_err)?;
    let shares_expected: Vec<SharesRow> = client
        .query(
            "SELECT toStartOfMinute(event_time) AS minute, platform, content_type, count(), toUInt64(0) \
             FROM raw_events FINAL WHERE type = 'social.share.created' \
             GROUP BY minute, platform, content_type ORDER BY minute, platform, content_type",
        )
        .fetch_all()
        .await
        .map_err(fetch_err)?;
    let shares_stored: Vec<SharesRow> = client
        .query(
            "SELECT minute, platform, content_type, shares, toUInt64(0) FROM shares_1m FINAL \
             WHERE shares > 0 ORDER BY minute, platform, content_type",
        )
        .fetch_all()
        .await
        .map_err(fetch_err)?;
    let counts = AggregateCounts {
        funnel_rows: funnel_stored.len(),
        engagement_rows: engagement_stored.len(),
        shares_rows: shares_stored.len(),
    };
    let mismatches: Vec<AggregateMismatch> = [
        compare("referral_funnel_1m", funnel_stored, funnel_expected),
        compare("engagement_1m", engagement_stored, engagement_expected),
        compare("shares_1m", shares_stored, shares_expected),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(if mismatches.is_empty() {
        Ok(counts)
    } else {
        Err(mismatches)
    })
}

fn compare<T: Ord + std::fmt::Debug>(
    table: &'static str,
    mut stored: Vec<T>,
    mut expected: Vec<T>,
) -> Option<AggregateMismatch> {
    stored.sort();
    expected.sort();
    if stored == expected {
        return None;
    }
    let unexpected = stored
        .iter()
        .filter(|r| expected.binary_search(r).is_err())
        .take(10)
        .map(|r| format!("{r:?}"))
        .collect();
    let missing = expected
        .iter()
        .filter(|r| stored.binary_search(r).is_err())
        .take(10)
        .map(|r| format!("{r:?}"))
        .collect();
    Some(AggregateMismatch {
        table,
        unexpected,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_lists_minutes_and_bounds() {
        let f = minute_filter("event_time", &[60, 180]);
        assert!(f.contains("event_time >= toDateTime(60)"));
        assert!(f.contains("event_time < toDateTime(240)"));
        assert!(f.contains("IN (60, 180)"));
        assert_eq!(minute_filter("x", &[]), "0");
    }

    #[test]
    fn dirty_minutes_are_sorted_and_removed() {
        let mut d = DirtyMinutes::default();
        for m in [180, 60, 120, 60] {
            d.insert(m);
        }
        assert_eq!(d.first(2), vec![60, 120]);
        d.remove(&[60, 120]);
        assert_eq!(d.first(5), vec![180]);
        assert_eq!(d.len(), 1);
    }
}
