//! The simulated world: users, codes, content, projects and testimonials, and the clock.
//!
//! Every call to [`World::step`] advances event time by an exponentially distributed gap (Poisson arrivals at the
//! configured rate) and produces exactly one event. What that event is comes from, in this order:
//! 1. an ongoing click flood (fraud-like bursts on one code from one address);
//! 2. a scheduled follow-up that is due: the next stage of a referral funnel, a reward after a completed
//!    conversion, a testimonial after a completed project, a user's first profile update after registering;
//! 3. otherwise a spontaneous action drawn with the weights of [`ROOT_WEIGHTS`] (the spec's daily rates).
//!
//! Actions only refer to things that exist in the world at their event time (a click needs a generated code, an
//! engagement a share, a completion a funnel that reached its last stage), so causality holds in event time. An
//! action whose prerequisites are missing falls back to the action that creates them ([`Root::fallback`]).
//!
//! State grows with the simulated population (users, codes, content); pools of work in progress are bounded.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::Effective;
use super::emit::Payload;
use super::ids::{CodeId, ContentRef, Name, Role, mix64};
use super::leaderboard::Board;
use super::referral::Prospect;
use super::tables;
use super::zipf::Zipf;

/// Spontaneous actions and their weights (events per day in the spec's rate table; subscribed events, which
/// have no rate there, get plausible ones). Conversions, rewards, referred registrations and testimonials are
/// not here: they follow from clicks and completed projects.
pub(crate) const ROOT_WEIGHTS: &[(Root, u32)] = &[
    (Root::Engage, 5_000),
    (Root::Click, 2_000),
    (Root::Share, 1_000),
    (Root::Code, 500),
    (Root::Message, 400),
    (Root::Register, 350),
    (Root::TestimonialEngage, 300),
    (Root::Profile, 250),
    (Root::ProjectCreate, 200),
    (Root::Bid, 160),
    (Root::ProjectComplete, 130),
    (Root::Leaderboard, 50),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Engage,
    Click,
    Share,
    Code,
    Message,
    Register,
    TestimonialEngage,
    Profile,
    ProjectCreate,
    Bid,
    ProjectComplete,
    Leaderboard,
}

impl Root {
    /// The action that creates what this one needs. Acyclic, ending at `Register`, which always succeeds.
    fn fallback(self) -> Root {
        match self {
            Root::Engage => Root::Share,
            Root::Click => Root::Code,
            Root::Share | Root::Code | Root::Profile | Root::ProjectCreate | Root::Register => Root::Register,
            Root::Message | Root::TestimonialEngage | Root::Leaderboard => Root::Engage,
            Root::Bid => Root::ProjectCreate,
            Root::ProjectComplete => Root::Bid,
        }
    }
}

/// Privacy preferences (bits set = non-default setting).
pub(crate) const NO_BROADCAST: u8 = 1;
pub(crate) const INCOGNITO: u8 = 2;
pub(crate) const ANONYMOUS_REFERRALS: u8 = 4;
pub(crate) const PRIVATE_REWARDS: u8 = 8;

/// Keep per-user lists short; older entries are forgotten.
pub(crate) const MAX_CONNECTIONS: usize = 64;
const MAX_RECENT: usize = 4;
/// Bound of the pools of open and awarded projects (the oldest are abandoned beyond it).
const MAX_PROJECT_POOL: usize = 20_000;
/// While fewer than `n` items exist to act on, an action on them falls back to creating one with probability
/// `1 - items / n`: at the start of a run engagement does not pile onto the very first share, nor clicks onto
/// the very first code.
pub(crate) fn warming_up(rng: &mut ChaCha8Rng, items: usize, n: usize) -> bool {
    items < n && rng.random_range(0..n) >= items
}

/// Content items kept in the popularity ranking.
const MAX_RANKED_CONTENT: usize = 100_000;
/// Shares remembered per content item (engagements go to one of these).
pub(crate) const SHARES_PER_CONTENT: usize = 8;

#[derive(Debug)]
pub(crate) struct User {
    pub(crate) role: Role,
    pub(crate) registered_ms: i64,
    /// Hash that determines the display name.
    pub(crate) name_hash: u64,
    pub(crate) name_variant: u8,
    /// Preferred privacy settings (bits), which profile updates move towards.
    pub(crate) privacy_pref: u8,
    /// Privacy settings as last announced.
    pub(crate) privacy: u8,
    /// `(program, code index)` of this user's referral codes, at most one per program.
    pub(crate) codes: Vec<(u32, u32)>,
    pub(crate) connections: Vec<u32>,
    /// Recent projects (as owner or contractor) and testimonials (as author or subject).
    pub(crate) projects: Vec<u32>,
    pub(crate) testimonials: Vec<u32>,
    pub(crate) profile_content: Option<u32>,
    pub(crate) portfolio_content: Option<u32>,
}

impl User {
    pub(crate) fn name(&self) -> Name {
        Name {
            role: self.role,
            hash: self.name_hash,
            variant: self.name_variant,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Code {
    pub(crate) id: CodeId,
    pub(crate) owner: u32,
    pub(crate) program: u32,
    pub(crate) created_ms: i64,
    pub(crate) content: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ShareRef {
    pub(crate) id: u64,
    pub(crate) platform: &'static str,
    pub(crate) sharer: u32,
    pub(crate) created_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Content {
    pub(crate) what: ContentRef,
    /// The most recent shares of this content, oldest first.
    pub(crate) shares: Vec<ShareRef>,
}

#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) owner: u32,
    pub(crate) contractor: Option<u32>,
    pub(crate) category: u8,
    pub(crate) public: bool,
    /// Time of the last state change (created, awarded, completed).
    pub(crate) changed_ms: i64,
    pub(crate) content: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct Testimonial {
    pub(crate) author: u32,
    pub(crate) subject: u32,
    pub(crate) published_ms: i64,
    pub(crate) content: Option<u32>,
}

/// A click flood in progress.
#[derive(Debug)]
pub(crate) struct Flood {
    pub(crate) code: u32,
    pub(crate) ip: std::net::IpAddr,
    pub(crate) user_agent: &'static str,
    pub(crate) remaining: u32,
}

/// Work scheduled for a later event time.
#[derive(Debug)]
pub(crate) enum Followup {
    Funnel(Prospect),
    Reward { referrer: u32, code: u32, program: u32 },
    Testimonial { project: u32 },
    Connect { user: u32, friend: u32 },
    Privacy { user: u32 },
}

#[derive(Debug)]
struct Scheduled {
    due_ms: i64,
    seq: u64,
    action: Followup,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ms, self.seq) == (other.due_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due_ms, self.seq).cmp(&(other.due_ms, other.seq))
    }
}

/// Counters for the identifiers of things the simulation creates.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) share: u64,
    pub(crate) prospect: u64,
    pub(crate) message: u64,
    pub(crate) reward: u64,
    pub(crate) bid: u64,
    scheduled: u64,
}

pub(crate) struct World {
    pub(crate) rng: ChaCha8Rng,
    pub(crate) salt: u64,
    pub(crate) programs: u32,
    start_ms: i64,
    mean_gap_ms: f64,
    elapsed_ms: f64,
    /// Event time of the current step.
    pub(crate) now: i64,
    pub(crate) ids: Counters,

    pub(crate) users: Vec<User>,
    pub(crate) homeowners: Vec<u32>,
    pub(crate) contractors: Vec<u32>,
    /// Users by activity rank (a random permutation, extended as users register): rank 0 is the most active.
    activity: Vec<u32>,
    user_zipf: Zipf,

    pub(crate) codes: Vec<Code>,
    /// Codes by click popularity.
    pub(crate) code_rank: Vec<u32>,
    pub(crate) code_zipf: Zipf,

    pub(crate) contents: Vec<Content>,
    /// Shared content by engagement popularity.
    pub(crate) content_rank: Vec<u32>,
    pub(crate) content_zipf: Zipf,

    pub(crate) projects: Vec<Project>,
    pub(crate) open_projects: Vec<u32>,
    pub(crate) awarded_projects: Vec<u32>,

    pub(crate) testimonials: Vec<Testimonial>,
    /// Testimonials by engagement popularity: new ones enter at the top.
    pub(crate) testimonial_rank: Vec<u32>,
    pub(crate) testimonial_zipf: Zipf,

    pub(crate) flood: Option<Flood>,
    pub(crate) boards: Vec<Board>,
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    root_total: u32,
}

impl World {
    pub(crate) fn new(config: &Effective) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let salt = rng.random::<u64>();
        let mut world = World {
            rng,
            salt,
            programs: config.programs,
            start_ms: config.start_ms,
            mean_gap_ms: config.mean_gap_ms,
            elapsed_ms: 0.0,
            now: config.start_ms,
            ids: Counters::default(),
            users: Vec::new(),
            homeowners: Vec::new(),
            contractors: Vec::new(),
            activity: Vec::new(),
            user_zipf: Zipf::new(0.85),
            codes: Vec::new(),
            code_rank: Vec::new(),
            code_zipf: Zipf::new(0.95),
            contents: Vec::new(),
            content_rank: Vec::new(),
            content_zipf: Zipf::new(1.1),
            projects: Vec::new(),
            open_projects: Vec::new(),
            awarded_projects: Vec::new(),
            testimonials: Vec::new(),
            testimonial_rank: Vec::new(),
            testimonial_zipf: Zipf::new(1.0),
            flood: None,
            boards: tables::BOARDS.iter().map(|id| Board::new(id)).collect(),
            scheduled: BinaryHeap::new(),
            root_total: ROOT_WEIGHTS.iter().map(|(_, w)| w).sum(),
        };
        world.populate(config.users);
        world
    }

    /// The users that exist before the first event, and projects they had under way.
    fn populate(&mut self, users: u32) {
        let before = self.start_ms - 86_400_000;
        for _ in 0..users {
            let role = self.random_role();
            self.add_user(role, before);
        }
        // Projects under way at the start: some waiting for a contractor, some being worked on.
        let in_progress = (users / 50) as usize;
        for i in 0..in_progress * 2 {
            if self.homeowners.is_empty() {
                break;
            }
            let owner = self.homeowners[self.rng.random_range(0..self.homeowners.len())];
            let project = self.add_project(owner, before);
            if i % 2 == 1 && !self.contractors.is_empty() {
                let contractor = self.contractors[self.rng.random_range(0..self.contractors.len())];
                self.award(project, contractor, before);
            }
        }
    }

    /// Advances the clock and produces the next event with its event time.
    pub(crate) fn step(&mut self) -> (i64, Payload) {
        let u: f64 = self.rng.random();
        self.elapsed_ms += -(1.0 - u).ln() * self.mean_gap_ms;
        // elapsed_ms is finite and non-negative; the float-to-int conversion saturates.
        self.now = self.start_ms.saturating_add(self.elapsed_ms as i64);

        if self.flood.is_some()
            && self.chance(0.5)
            && let Some(payload) = self.flood_click()
        {
            return (self.now, payload);
        }
        if self.scheduled.peek().is_some_and(|s| s.0.due_ms <= self.now)
            && let Some(Reverse(item)) = self.scheduled.pop()
        {
            return (self.now, self.run_followup(item.action));
        }
        let mut pick = self.rng.random_range(0..self.root_total);
        let mut root = Root::Register;
        for (candidate, weight) in ROOT_WEIGHTS {
            if pick < *weight {
                root = *candidate;
                break;
            }
            pick -= weight;
        }
        (self.now, self.run_root(root))
    }

    fn run_root(&mut self, mut root: Root) -> Payload {
        loop {
            let payload = match root {
                Root::Engage => self.share_engaged(),
                Root::Click => self.link_clicked(),
                Root::Share => self.share_created(),
                Root::Code => self.code_generated(),
                Root::Message => self.message_sent(),
                Root::Register => return self.register_organic(),
                Root::TestimonialEngage => self.testimonial_engaged(),
                Root::Profile => self.profile_updated(),
                Root::ProjectCreate => self.project_created(),
                Root::Bid => self.bid_awarded(),
                Root::ProjectComplete => self.project_completed(),
                Root::Leaderboard => self.leaderboard_updated(),
            };
            match payload {
                Some(payload) => return payload,
                None => root = root.fallback(),
            }
        }
    }

    fn run_followup(&mut self, action: Followup) -> Payload {
        match action {
            Followup::Funnel(prospect) => self.funnel_step(prospect),
            Followup::Reward {
                referrer,
                code,
                program,
            } => self.reward_earned(referrer, code, program),
            Followup::Testimonial { project } => self.testimonial_published(project),
            Followup::Connect { user, friend } => self.connect(user, friend),
            Followup::Privacy { user } => self.privacy_update(user, true),
        }
    }

    /// Runs `action` at least `min_s` and at most `max_s` seconds of event time from now (log-uniform: short
    /// delays are common, long ones happen).
    pub(crate) fn schedule(&mut self, min_s: f64, max_s: f64, action: Followup) {
        let delay_ms = self.log_uniform(min_s * 1_000.0, max_s * 1_000.0).max(1.0) as i64;
        self.ids.scheduled += 1;
        let item = Scheduled {
            due_ms: self.now.saturating_add(delay_ms),
            seq: self.ids.scheduled,
            action,
        };
        self.scheduled.push(Reverse(item));
    }

    // ---- random helpers ----

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    /// A value between `lo` and `hi` whose logarithm is uniform.
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u: f64 = self.rng.random();
        (lo.ln() + u * (hi.ln() - lo.ln())).exp()
    }

    pub(crate) fn weighted<T: Copy>(&mut self, table: &[(T, u32)]) -> Option<T> {
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut pick = self.rng.random_range(0..total);
        for (value, weight) in table {
            if pick < *weight {
                return Some(*value);
            }
            pick -= weight;
        }
        None
    }

    pub(crate) fn one_of<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.rng.random_range(0..items.len())).copied()
    }

    fn random_role(&mut self) -> Role {
        self.weighted(&[(Role::Homeowner, 70), (Role::Contractor, 25), (Role::Partner, 5)])
            .unwrap_or(Role::Homeowner)
    }

    // ---- users ----

    pub(crate) fn add_user(&mut self, role: Role, registered_ms: i64) -> u32 {
        let index = self.users.len() as u32;
        let mut privacy_pref = 0;
        for (bit, p) in [
            (NO_BROADCAST, 0.04),
            (INCOGNITO, 0.03),
            (ANONYMOUS_REFERRALS, 0.07),
            (PRIVATE_REWARDS, 0.09),
        ] {
            if self.chance(p) {
                privacy_pref |= bit;
            }
        }
        self.users.push(User {
            role,
            registered_ms,
            name_hash: mix64(self.salt ^ u64::from(index)),
            name_variant: 0,
            privacy_pref,
            privacy: 0,
            codes: Vec::new(),
            connections: Vec::new(),
            projects: Vec::new(),
            testimonials: Vec::new(),
            profile_content: None,
            portfolio_content: None,
        });
        match role {
            Role::Homeowner => self.homeowners.push(index),
            Role::Contractor => self.contractors.push(index),
            Role::Partner => {}
        }
        // Inside-out Fisher-Yates: the activity ranking stays a uniformly random permutation.
        self.activity.push(index);
        let last = self.activity.len() - 1;
        let j = self.rng.random_range(0..=last);
        self.activity.swap(j, last);
        index
    }

    /// A user registered before now, chosen by activity (a few users do much of the activity).
    pub(crate) fn active_user(&mut self) -> Option<u32> {
        if self.activity.is_empty() {
            return None;
        }
        for _ in 0..3 {
            let rank = self.user_zipf.sample(&mut self.rng, self.activity.len());
            let user = self.activity[rank];
            if self.users[user as usize].registered_ms < self.now {
                return Some(user);
            }
        }
        None
    }

    /// A user other than `not`, registered before now, chosen uniformly.
    pub(crate) fn other_user(&mut self, not: u32) -> Option<u32> {
        if self.users.len() < 2 {
            return None;
        }
        for _ in 0..3 {
            let user = self.rng.random_range(0..self.users.len()) as u32;
            if user != not && self.users[user as usize].registered_ms < self.now {
                return Some(user);
            }
        }
        None
    }

    pub(crate) fn user(&self, index: u32) -> &User {
        &self.users[index as usize]
    }

    pub(crate) fn user_mut(&mut self, index: u32) -> &mut User {
        &mut self.users[index as usize]
    }

    /// An organic sign-up (no referral code).
    fn register_organic(&mut self) -> Payload {
        let role = self.random_role();
        self.register(role, None).1
    }

    // ---- projects ----

    pub(crate) fn add_project(&mut self, owner: u32, created_ms: i64) -> u32 {
        let index = self.projects.len() as u32;
        let category = self.rng.random_range(0..tables::CATEGORIES.len()) as u8;
        let public = self.chance(0.85);
        self.projects.push(Project {
            owner,
            contractor: None,
            category,
            public,
            changed_ms: created_ms,
            content: None,
        });
        push_recent(&mut self.users[owner as usize].projects, index);
        push_bounded(&mut self.open_projects, index, &mut self.rng);
        index
    }

    pub(crate) fn award(&mut self, project: u32, contractor: u32, at_ms: i64) {
        let p = &mut self.projects[project as usize];
        p.contractor = Some(contractor);
        p.changed_ms = at_ms;
        push_recent(&mut self.users[contractor as usize].projects, project);
        push_bounded(&mut self.awarded_projects, project, &mut self.rng);
    }

    // ---- content ----

    /// The content item for `what`, created (and given a popularity rank) on its first share.
    pub(crate) fn content_index(&mut self, what: ContentRef, existing: Option<u32>) -> u32 {
        if let Some(index) = existing {
            return index;
        }
        let index = self.contents.len() as u32;
        self.contents.push(Content {
            what,
            shares: Vec::new(),
        });
        // Most new content starts in the long tail; now and then something goes viral.
        let n = self.content_rank.len();
        let position = if self.chance(0.04) {
            self.rng.random_range(0..=n / 100)
        } else {
            self.rng.random_range(n / 2..=n)
        };
        self.content_rank.insert(position, index);
        // The least popular content drops out of the ranking (and gets no more engagement).
        self.content_rank.truncate(MAX_RANKED_CONTENT);
        index
    }
}

/// Adds `item` to a short most-recent-last list.
pub(crate) fn push_recent(list: &mut Vec<u32>, item: u32) {
    if list.len() >= MAX_RECENT {
        list.remove(0);
    }
    list.push(item);
}

/// Adds `item` to a work pool, abandoning a random entry when the pool is full.
fn push_bounded(pool: &mut Vec<u32>, item: u32, rng: &mut ChaCha8Rng) {
    if pool.len() >= MAX_PROJECT_POOL {
        let victim = rng.random_range(0..pool.len());
        pool.swap_remove(victim);
    }
    pool.push(item);
}

/// Takes a random entry out of `pool` whose time (by `time_of`) is at least `min_age_ms` before `now`.
pub(crate) fn take_aged(
    pool: &mut Vec<u32>,
    rng: &mut ChaCha8Rng,
    now: i64,
    min_age_ms: i64,
    time_of: impl Fn(u32) -> i64,
) -> Option<u32> {
    for _ in 0..4 {
        if pool.is_empty() {
            return None;
        }
        let slot = rng.random_range(0..pool.len());
        if time_of(pool[slot]) <= now - min_age_ms {
            return Some(pool.swap_remove(slot));
        }
    }
    None
}
