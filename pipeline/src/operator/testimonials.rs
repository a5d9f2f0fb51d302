//! Testimonial activity on the public `testimonials.recent` topic: each published testimonial, then its
//! engagement grouped per tick. Testimonials by users hidden by their privacy settings are never published; a
//! hidden subject is replaced by `null`, and so are the project (a subject's own project names them) and the
//! excerpt (free text about the subject).

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use social_schemas::derived::MessageData;
use social_schemas::{Event, TestimonialEngagementType, TestimonialPublished};

use super::directory::Directory;
use super::ids::MessageId;
use super::output::{Destination, Emitter, topics};
use crate::window::EventTimeMs;

pub const PUBLISHED_TYPE: &str = "testimonial.published";
pub const ENGAGED_TYPE: &str = "testimonial.engaged";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestimonialCounts {
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub helpful: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recent {
    published: TestimonialPublished,
    time_ms: EventTimeMs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Testimonials {
    recent: VecDeque<Recent>,
    totals: FxHashMap<String, TestimonialCounts>,
    /// Testimonials engaged since the last tick.
    pending: BTreeMap<String, ()>,
    /// Testimonials engaged before any publication of theirs was read, with the time of their latest engagement:
    /// their totals are forgotten once the watermark is past it by the allowed lateness and they are still
    /// unknown, so that engagements naming testimonials that never come cannot grow the state for ever.
    #[serde(default)]
    unpublished: FxHashMap<String, EventTimeMs>,
}

impl Testimonials {
    pub fn published(
        &mut self,
        event: &Event,
        p: &TestimonialPublished,
        dir: &Directory,
        keep: usize,
        out: &mut Emitter,
    ) {
        let t = event.time.timestamp_millis();
        if dir.is_public(&p.author_id) {
            let id = MessageId::new("testimonial")
                .str(&event.source)
                .str(&event.id)
                .finish();
            out.emit(
                Destination::Sse,
                topics::TESTIMONIALS_RECENT.to_owned(),
                id,
                PUBLISHED_TYPE,
                t,
                MessageData::new(&public_view(p, dir)),
            );
        }
        self.recent.push_back(Recent {
            published: p.clone(),
            time_ms: t,
        });
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        self.refresh_snapshot(dir, out);
    }

    pub fn engaged(
        &mut self,
        testimonial: &str,
        kind: TestimonialEngagementType,
        t: EventTimeMs,
        dir: &Directory,
    ) {
        if !dir.testimonial_authors.contains_key(testimonial.as_bytes()) {
            let latest = self.unpublished.entry(testimonial.to_owned()).or_insert(t);
            *latest = (*latest).max(t);
        }
        let counts = self.totals.entry(testimonial.to_owned()).or_default();
        match kind {
            TestimonialEngagementType::Like => counts.likes += 1,
            TestimonialEngagementType::Comment => counts.comments += 1,
            TestimonialEngagementType::Share => counts.shares += 1,
            TestimonialEngagementType::Helpful => counts.helpful += 1,
        }
        self.pending.insert(testimonial.to_owned(), ());
    }

    /// Forgets the totals of testimonials still unknown whose latest engagement is before `cutoff` (the
    /// watermark minus the allowed lateness). A publication read after that (too late, though earlier in event
    /// time) still makes its testimonial known: its totals then count the engagements read after it.
    pub fn expire_unpublished(&mut self, cutoff: EventTimeMs, dir: &Directory) {
        let totals = &mut self.totals;
        self.unpublished.retain(|testimonial, latest| {
            if dir.testimonial_authors.contains_key(testimonial.as_bytes()) {
                return false;
            }
            if *latest < cutoff {
                totals.remove(testimonial);
                return false;
            }
            true
        });
    }

    pub fn len(&self) -> usize {
        self.recent.len() + self.totals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `idle`: an idle flush's tick, which may come at the time of a regular tick that reported already.
    pub fn fire(&mut self, tick: EventTimeMs, idle: bool, dir: &Directory, out: &mut Emitter) {
        for (testimonial, ()) in std::mem::take(&mut self.pending) {
            let visible = dir
                .testimonial_authors
                .get(testimonial.as_bytes())
                .is_some_and(|a| dir.is_public(a.as_str()));
            let Some(counts) = self.totals.get(&testimonial).filter(|_| visible) else {
                continue;
            };
            let mut id = MessageId::new("testimonial-engaged").str(&testimonial).num(tick);
            if idle {
                // Distinct from the message a regular tick at the same time may have sent.
                id = id.str("idle");
            }
            let id = id.finish();
            let data = MessageData::new(&EngagedJson {
                counts: CountsJson::from(counts),
                testimonial_id: &testimonial,
            });
            out.emit(
                Destination::Sse,
                topics::TESTIMONIALS_RECENT.to_owned(),
                id,
                ENGAGED_TYPE,
                tick,
                data,
            );
        }
    }

    /// Whether `user` is the author or subject of a testimonial in the recent list (privacy changes then
    /// require a new snapshot).
    pub fn mentions(&self, user: &str) -> bool {
        self.recent
            .iter()
            .any(|r| r.published.author_id == user || r.published.subject_user_id == user)
    }

    /// The snapshot lists the recent testimonials of visible authors, newest first.
    pub fn refresh_snapshot(&self, dir: &Directory, out: &mut Emitter) {
        let list: Vec<RecentJson<'_>> = self
            .recent
            .iter()
            .rev()
            .filter(|r| dir.is_public(&r.published.author_id))
            .map(|r| {
                let view = public_view(&r.published, dir);
                let counts = self
                    .totals
                    .get(&r.published.testimonial_id)
                    .copied()
                    .unwrap_or_default();
                RecentJson {
                    author_id: view.author_id,
                    counts: CountsJson::from(&counts),
                    excerpt: view.excerpt,
                    project_id: view.project_id,
                    published_at: super::output::to_utc(r.time_ms),
                    rating: view.rating,
                    subject_user_id: view.subject_user_id,
                    testimonial_id: view.testimonial_id,
                }
            })
            .collect();
        out.snapshot(
            topics::TESTIMONIALS_RECENT.to_owned(),
            "recent",
            Some(MessageData::new(&list)),
        );
    }
}

fn public_view<'a>(p: &'a TestimonialPublished, dir: &Directory) -> PublicJson<'a> {
    let subject_public = dir.is_public(&p.subject_user_id);
    PublicJson {
        author_id: &p.author_id,
        excerpt: p.excerpt.as_deref().filter(|_| subject_public),
        project_id: p.project_id.as_deref().filter(|_| subject_public),
        rating: p.rating,
        subject_user_id: subject_public.then_some(p.subject_user_id.as_str()),
        testimonial_id: &p.testimonial_id,
    }
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicJson<'a> {
    author_id: &'a str,
    excerpt: Option<&'a str>,
    project_id: Option<&'a str>,
    rating: u8,
    subject_user_id: Option<&'a str>,
    testimonial_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecentJson<'a> {
    author_id: &'a str,
    counts: CountsJson,
    excerpt: Option<&'a str>,
    project_id: Option<&'a str>,
    published_at: chrono::DateTime<chrono::Utc>,
    rating: u8,
    subject_user_id: Option<&'a str>,
    testimonial_id: &'a str,
}

#[derive(Serialize)]
struct CountsJson {
    comments: u64,
    helpful: u64,
    likes: u64,
    shares: u64,
}

impl From<&TestimonialCounts> for CountsJson {
    fn from(c: &TestimonialCounts) -> Self {
        CountsJson {
            comments: c.comments,
            helpful: c.helpful,
            likes: c.likes,
            shares: c.shares,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EngagedJson<'a> {
    counts: CountsJson,
    testimonial_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::key::Key;

    #[test]
    fn totals_of_testimonials_never_published_are_forgotten_past_the_lateness() {
        let mut dir = Directory::default();
        dir.testimonial_authors
            .insert(Key::new("t-known"), Key::new("author"));
        let mut testimonials = Testimonials::default();
        for t in [1_000, 3_000] {
            testimonials.engaged("t-never", TestimonialEngagementType::Like, t, &dir);
            testimonials.engaged("t-later", TestimonialEngagementType::Like, t, &dir);
            testimonials.engaged("t-known", TestimonialEngagementType::Helpful, t, &dir);
        }
        assert_eq!(testimonials.totals.len(), 3);
        // Within the lateness of the latest engagement: kept, a publication may still come.
        testimonials.expire_unpublished(3_000, &dir);
        assert_eq!(testimonials.totals.len(), 3);
        // `t-later` is published in time; `t-never` never is.
        dir.testimonial_authors
            .insert(Key::new("t-later"), Key::new("author"));
        testimonials.expire_unpublished(3_001, &dir);
        assert!(testimonials.unpublished.is_empty());
        assert!(!testimonials.totals.contains_key("t-never"));
        assert_eq!(testimonials.totals.get("t-later").map(|c| c.likes), Some(2));
        assert_eq!(testimonials.totals.get("t-known").map(|c| c.helpful), Some(2));
        // Checkpoints keep what is waiting.
        testimonials.engaged("t-new", TestimonialEngagementType::Share, 9_000, &dir);
        let restored: Testimonials =
            serde_json::from_str(&serde_json::to_string(&testimonials).unwrap()).unwrap();
        assert_eq!(restored.unpublished.get("t-new"), Some(&9_000));
    }
}
