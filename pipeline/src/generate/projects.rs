//! Marketplace activity the social features subscribe to: projects, awarded bids, completions, and the
//! testimonials that follow them.

use rand::Rng;

use super::emit::{
    BidAwarded, Payload, ProjectCompleted, ProjectCreated, TestimonialEngaged, TestimonialPublished,
};
use super::ids::{Id, Role};
use super::model::{Followup, Testimonial, World, push_recent, take_aged, warming_up};
use super::tables;

/// Testimonials kept in the popularity ranking (older ones stop getting engagement).
const MAX_RANKED_TESTIMONIALS: usize = 10_000;
const RATINGS: &[(u8, u32)] = &[(5, 60), (4, 25), (3, 8), (2, 4), (1, 3)];
const TESTIMONIAL_ENGAGEMENTS: &[(&str, u32)] =
    &[("like", 50), ("helpful", 30), ("comment", 12), ("share", 8)];

impl World {
    /// A homeowner registered before now, preferring active ones.
    fn some_homeowner(&mut self) -> Option<u32> {
        for _ in 0..3 {
            if let Some(user) = self.active_user()
                && self.user(user).role == Role::Homeowner
            {
                return Some(user);
            }
        }
        if self.homeowners.is_empty() {
            return None;
        }
        let owner = self.homeowners[self.rng.random_range(0..self.homeowners.len())];
        (self.user(owner).registered_ms < self.now).then_some(owner)
    }

    pub(crate) fn project_created(&mut self) -> Option<Payload> {
        let owner = self.some_homeowner()?;
        let project = self.add_project(owner, self.now);
        let p = &self.projects[project as usize];
        let (category, _, _, titles) = tables::CATEGORIES[p.category as usize % tables::CATEGORIES.len()];
        let public = p.public;
        let title = titles[self.rng.random_range(0..titles.len())];
        Some(Payload::ProjectCreated(ProjectCreated {
            project_id: Id::project(project),
            owner_id: Id::user(owner),
            title,
            category: self.chance(0.9).then_some(category),
            visibility: if public {
                self.chance(0.8).then_some("public")
            } else {
                Some("private")
            },
        }))
    }

    pub(crate) fn bid_awarded(&mut self) -> Option<Payload> {
        if self.contractors.is_empty() {
            return None;
        }
        let contractor = self.contractors[self.rng.random_range(0..self.contractors.len())];
        if self.user(contractor).registered_ms >= self.now {
            return None;
        }
        let projects = &self.projects;
        let project = take_aged(&mut self.open_projects, &mut self.rng, self.now, 5_000, |p| {
            projects[p as usize].changed_ms
        })?;
        self.award(project, contractor, self.now);
        let p = &self.projects[project as usize];
        let owner = p.owner;
        let (_, low, high, _) = tables::CATEGORIES[p.category as usize % tables::CATEGORIES.len()];
        let dollars = self.log_uniform(f64::from(low), f64::from(high));
        let amount = self.chance(0.95).then(|| (dollars * 100.0).round() / 100.0);
        self.ids.bid += 1;
        Some(Payload::BidAwarded(BidAwarded {
            bid_id: Id {
                prefix: "bid",
                n: self.ids.bid,
            },
            project_id: Id::project(project),
            contractor_id: Id::user(contractor),
            homeowner_id: Id::user(owner),
            amount,
        }))
    }

    pub(crate) fn project_completed(&mut self) -> Option<Payload> {
        let projects = &self.projects;
        let project = take_aged(&mut self.awarded_projects, &mut self.rng, self.now, 10_000, |p| {
            projects[p as usize].changed_ms
        })?;
        let p = &mut self.projects[project as usize];
        p.changed_ms = self.now;
        let (owner, contractor) = (p.owner, p.contractor?);
        if self.chance(0.55) {
            self.schedule(10.0, 120.0, Followup::Testimonial { project });
        }
        Some(Payload::ProjectCompleted(ProjectCompleted {
            project_id: Id::project(project),
            owner_id: Id::user(owner),
            contractor_id: Id::user(contractor),
        }))
    }

    /// The homeowner reviews the contractor of a completed project.
    pub(crate) fn testimonial_published(&mut self, project: u32) -> Payload {
        let p = &self.projects[project as usize];
        let (author, subject) = (p.owner, p.contractor.unwrap_or(p.owner));
        let index = self.testimonials.len() as u32;
        self.testimonials.push(Testimonial {
            author,
            subject,
            published_ms: self.now,
            content: None,
        });
        push_recent(&mut self.user_mut(author).testimonials, index);
        push_recent(&mut self.user_mut(subject).testimonials, index);
        // Recent testimonials get the attention.
        self.testimonial_rank.insert(0, index);
        self.testimonial_rank.truncate(MAX_RANKED_TESTIMONIALS);
        let rating = self.weighted(RATINGS).unwrap_or(5);
        let excerpts = tables::EXCERPTS[usize::from(rating.clamp(1, 5) - 1)];
        Payload::TestimonialPublished(TestimonialPublished {
            testimonial_id: Id::testimonial(index),
            author_id: Id::user(author),
            subject_user_id: Id::user(subject),
            rating,
            project_id: Some(Id::project(project)),
            excerpt: self
                .chance(0.85)
                .then(|| excerpts[self.rng.random_range(0..excerpts.len())]),
        })
    }

    pub(crate) fn testimonial_engaged(&mut self) -> Option<Payload> {
        if self.testimonial_rank.is_empty() || warming_up(&mut self.rng, self.testimonial_rank.len(), 10) {
            return None;
        }
        let rank = self
            .testimonial_zipf
            .sample(&mut self.rng, self.testimonial_rank.len());
        let testimonial = self.testimonial_rank[rank];
        let t = &self.testimonials[testimonial as usize];
        if t.published_ms >= self.now {
            return None;
        }
        let author = t.author;
        let engagement_type = self.weighted(TESTIMONIAL_ENGAGEMENTS)?;
        let engager = if self.chance(0.85) {
            self.other_user(author)
        } else {
            None
        };
        Some(Payload::TestimonialEngaged(TestimonialEngaged {
            testimonial_id: Id::testimonial(testimonial),
            engagement_type,
            engager_id: engager.map(Id::user),
        }))
    }
}
