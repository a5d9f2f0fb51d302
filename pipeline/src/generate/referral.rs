//! Referral activity: codes, link clicks (with the odd click flood and self-referral), the conversion funnel,
//! rewards and leaderboards.
//!
//! The funnel of one prospect: a click, then `signup_started`, the sign-up itself (`user.registered` with the
//! code), `email_verified`, `profile_completed`, sometimes `first_project`, then `referral.conversion.completed`
//! and, for most completions, `referral.reward.earned`. Each step happens a few seconds to a couple of minutes
//! of event time after the previous one, and a share of prospects drops out at every step.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::Rng;

use super::emit::{
    CodeGenerated, ConversionCompleted, ConversionStarted, LeaderboardUpdated, LinkClicked, Payload,
    PendingReward, RankChange, RewardEarned,
};
use super::ids::{CodeId, Id, LandingPage, ProgramId, Role, Ts, mix64};
use super::model::{Code, Flood, Followup, World, warming_up};
use super::tables;

/// Share of ordinary clicks that turn into a prospect.
const PROSPECT_RATE: f64 = 0.2;
/// Chance per click that a click flood starts.
const FLOOD_RATE: f64 = 1.0 / 2_500.0;
/// Chance per click that it is a user clicking their own link to refer themselves.
const SELF_REFERRAL_RATE: f64 = 0.001;
/// Distinct simulated visitors (addresses and browsers repeat across clicks).
const VISITORS: u64 = 200_000;
/// Reward eligibility: conversions become payable this long after completion.
const ELIGIBLE_AFTER_MS: i64 = 14 * 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    SignupStarted,
    Register,
    EmailVerified,
    ProfileCompleted,
    FirstProject,
    Complete(&'static str),
}

/// Someone working through sign-up after clicking a referral link.
#[derive(Debug)]
pub(crate) struct Prospect {
    id: u64,
    code: u32,
    role: Role,
    /// The account created at sign-up.
    user: Option<u32>,
    /// The code's owner referring themselves: the prospect is the owner, no new account is created.
    self_referral: bool,
    stage: Stage,
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::SignupStarted => "signup_started",
        Stage::EmailVerified => "email_verified",
        Stage::ProfileCompleted => "profile_completed",
        _ => "first_project",
    }
}

/// Address of a simulated visitor, stable per visitor: mostly residential IPv4, a fifth IPv6.
fn visitor_ip(hash: u64) -> IpAddr {
    let octets = tables::IPV4_FIRST_OCTETS;
    if hash.is_multiple_of(5) {
        let prefixes = tables::IPV6_PREFIXES;
        let h2 = mix64(hash);
        let g = |shift: u32, v: u64| (v >> shift) as u16;
        IpAddr::V6(Ipv6Addr::new(
            prefixes[(hash >> 8) as usize % prefixes.len()],
            g(16, hash) & 0x0fff,
            g(32, hash),
            g(48, hash) & 0x00ff,
            g(0, h2),
            g(16, h2),
            g(32, h2),
            g(48, h2),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            octets[(hash >> 8) as usize % octets.len()],
            (hash >> 16) as u8,
            (hash >> 24) as u8,
            1 + ((hash >> 32) % 254) as u8,
        ))
    }
}

/// Address of a hosting provider (where floods come from).
fn hosting_ip(hash: u64) -> IpAddr {
    let octets = tables::IPV4_HOSTING_OCTETS;
    IpAddr::V4(Ipv4Addr::new(
        octets[(hash >> 8) as usize % octets.len()],
        (hash >> 16) as u8,
        (hash >> 24) as u8,
        1 + ((hash >> 32) % 254) as u8,
    ))
}

/// Browser of a simulated visitor, stable per visitor, following the weights of the table.
fn visitor_agent(hash: u64) -> &'static str {
    let table = tables::USER_AGENTS;
    let total: u64 = table.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut pick = (hash >> 40) % total.max(1);
    for (agent, weight) in table {
        if pick < u64::from(*weight) {
            return agent;
        }
        pick -= u64::from(*weight);
    }
    table[0].0
}

impl World {
    fn code_id(&self, code: u32) -> CodeId {
        self.codes[code as usize].id
    }

    /// A code chosen by click popularity, generated before now.
    fn popular_code(&mut self) -> Option<u32> {
        if self.code_rank.is_empty() {
            return None;
        }
        let rank = self.code_zipf.sample(&mut self.rng, self.code_rank.len());
        let code = self.code_rank[rank];
        (self.codes[code as usize].created_ms < self.now).then_some(code)
    }

    fn preferred_program(&mut self, role: Role) -> u32 {
        if self.programs > tables::PROGRAMS.len() as u32 && self.chance(0.2) {
            return self.rng.random_range(0..self.programs);
        }
        let table: &[(u32, u32)] = match role {
            Role::Homeowner => &[(0, 60), (3, 25), (4, 15)],
            Role::Contractor => &[(1, 70), (0, 30)],
            Role::Partner => &[(2, 80), (0, 20)],
        };
        self.weighted(table).unwrap_or(0) % self.programs
    }

    pub(crate) fn code_generated(&mut self) -> Option<Payload> {
        for _ in 0..4 {
            let user = self.active_user()?;
            let role = self.user(user).role;
            let preferred = self.preferred_program(role);
            let taken = |program: u32| self.user(user).codes.iter().any(|(p, _)| *p == program);
            let Some(program) = (0..self.programs)
                .map(|k| (preferred + k) % self.programs)
                .find(|p| !taken(*p))
            else {
                continue;
            };
            let index = self.codes.len() as u32;
            let id = CodeId::scramble(u64::from(index), self.salt);
            self.codes.push(Code {
                id,
                owner: user,
                program,
                created_ms: self.now,
                content: None,
            });
            self.user_mut(user).codes.push((program, index));
            // Partners' codes tend to be the popular ones.
            let n = self.code_rank.len();
            let position = if role == Role::Partner {
                self.rng.random_range(0..=n / 10)
            } else {
                self.rng.random_range(0..=n)
            };
            self.code_rank.insert(position, index);
            return Some(Payload::CodeGenerated(CodeGenerated {
                code_id: id,
                user_id: Id::user(user),
                program_id: ProgramId(program),
            }));
        }
        None
    }

    pub(crate) fn link_clicked(&mut self) -> Option<Payload> {
        if warming_up(&mut self.rng, self.code_rank.len(), 50) {
            return None;
        }
        let code = self.popular_code()?;
        if self.flood.is_none() && self.chance(FLOOD_RATE) {
            let hash = mix64(self.salt ^ self.rng.random::<u64>());
            let agents = tables::FLOOD_USER_AGENTS;
            self.flood = Some(Flood {
                code,
                ip: hosting_ip(hash),
                user_agent: agents[(hash >> 50) as usize % agents.len()],
                remaining: self.rng.random_range(40..=200),
            });
            return self.flood_click();
        }
        let (hash, self_referral) = if self.chance(SELF_REFERRAL_RATE) {
            // The owner's own address and browser.
            (
                mix64(self.salt ^ (u64::from(self.codes[code as usize].owner) + (1 << 40))),
                true,
            )
        } else {
            (mix64(self.salt ^ self.rng.random_range(0..VISITORS)), false)
        };
        let landing_page = self.chance(0.85).then(|| LandingPage {
            code: self.code_id(code),
            utm_source: tables::PLATFORMS[(hash >> 20) as usize % tables::PLATFORMS.len()].0,
        });
        if self_referral || self.chance(PROSPECT_RATE) {
            let role = if self.codes[code as usize].program == 1 && self.chance(0.8) {
                Role::Contractor
            } else {
                self.weighted(&[(Role::Homeowner, 70), (Role::Contractor, 25), (Role::Partner, 5)])
                    .unwrap_or(Role::Homeowner)
            };
            self.ids.prospect += 1;
            let prospect = Prospect {
                id: self.ids.prospect,
                code,
                role,
                user: None,
                self_referral,
                stage: Stage::SignupStarted,
            };
            self.schedule(1.0, 20.0, Followup::Funnel(prospect));
        }
        Some(Payload::LinkClicked(LinkClicked {
            referral_id: self.code_id(code),
            source_ip: visitor_ip(hash),
            user_agent: visitor_agent(hash),
            landing_page,
        }))
    }

    /// The next click of the flood in progress, if any.
    pub(crate) fn flood_click(&mut self) -> Option<Payload> {
        let flood = self.flood.as_mut()?;
        flood.remaining = flood.remaining.saturating_sub(1);
        let (code, ip, user_agent) = (flood.code, flood.ip, flood.user_agent);
        if flood.remaining == 0 {
            self.flood = None;
        }
        let id = self.code_id(code);
        Some(Payload::LinkClicked(LinkClicked {
            referral_id: id,
            source_ip: ip,
            user_agent,
            landing_page: Some(LandingPage {
                code: id,
                utm_source: "copy_link",
            }),
        }))
    }

    /// Runs the prospect's current stage and schedules the next one (unless they drop out).
    pub(crate) fn funnel_step(&mut self, mut p: Prospect) -> Payload {
        let owner = self.codes[p.code as usize].owner;
        let prospect_id = if p.self_referral {
            Id::user(owner)
        } else {
            Id {
                prefix: "prospect",
                n: p.id,
            }
        };
        let started = |stage: Stage, code: CodeId| {
            Payload::ConversionStarted(ConversionStarted {
                referral_id: code,
                prospect_id,
                stage: stage_name(stage),
            })
        };
        let code_id = self.code_id(p.code);
        let sure = p.self_referral;
        match p.stage {
            Stage::SignupStarted => {
                let payload = started(p.stage, code_id);
                if sure {
                    p.stage = Stage::EmailVerified;
                    self.schedule(5.0, 40.0, Followup::Funnel(p));
                } else if self.chance(0.85) {
                    p.stage = Stage::Register;
                    self.schedule(3.0, 30.0, Followup::Funnel(p));
                }
                payload
            }
            Stage::Register => {
                let (user, payload) = self.register(p.role, Some(p.code));
                p.user = Some(user);
                if self.chance(0.5) {
                    // The friend who referred them shows up in their network.
                    self.schedule(5.0, 60.0, Followup::Connect { user, friend: owner });
                }
                if self.chance(0.9) {
                    p.stage = Stage::EmailVerified;
                    self.schedule(5.0, 40.0, Followup::Funnel(p));
                }
                payload
            }
            Stage::EmailVerified => {
                let payload = started(p.stage, code_id);
                if sure || self.chance(0.85) {
                    p.stage = Stage::ProfileCompleted;
                    self.schedule(5.0, 60.0, Followup::Funnel(p));
                }
                payload
            }
            Stage::ProfileCompleted => {
                let payload = started(p.stage, code_id);
                let r: f64 = self.rng.random();
                if sure || r < 0.55 {
                    p.stage = Stage::Complete("registration");
                    self.schedule(1.0, 5.0, Followup::Funnel(p));
                } else if r < 0.85 {
                    p.stage = Stage::FirstProject;
                    self.schedule(10.0, 90.0, Followup::Funnel(p));
                }
                payload
            }
            Stage::FirstProject => {
                let payload = started(p.stage, code_id);
                if self.chance(0.9) {
                    let kind = if p.role == Role::Contractor {
                        "first_bid"
                    } else {
                        "first_project"
                    };
                    p.stage = Stage::Complete(kind);
                    self.schedule(1.0, 5.0, Followup::Funnel(p));
                }
                payload
            }
            Stage::Complete(kind) => self.complete(&p, kind, owner),
        }
    }

    fn complete(&mut self, p: &Prospect, kind: &'static str, referrer: u32) -> Payload {
        let new_user = if p.self_referral {
            referrer
        } else {
            p.user.unwrap_or(referrer)
        };
        let program = self.codes[p.code as usize].program;
        let (reward_type, cents) = tables::PROGRAM_REWARDS[program as usize % tables::PROGRAM_REWARDS.len()];
        for board in &mut self.boards {
            board.record(referrer, self.now);
        }
        if self.chance(0.8) {
            self.schedule(
                1.0,
                15.0,
                Followup::Reward {
                    referrer,
                    code: p.code,
                    program,
                },
            );
        }
        Payload::ConversionCompleted(ConversionCompleted {
            referral_id: self.code_id(p.code),
            new_user_id: Id::user(new_user),
            referrer_id: Id::user(referrer),
            program_id: Some(ProgramId(program)),
            conversion_type: Some(kind),
            reward: Some(PendingReward {
                kind: reward_type,
                amount: cents as f64 / 100.0,
                status: "pending",
                eligible_date: Some(Ts(self.now.saturating_add(ELIGIBLE_AFTER_MS))),
            }),
        })
    }

    pub(crate) fn reward_earned(&mut self, referrer: u32, code: u32, program: u32) -> Payload {
        let (reward_type, cents) = tables::PROGRAM_REWARDS[program as usize % tables::PROGRAM_REWARDS.len()];
        self.ids.reward += 1;
        Payload::RewardEarned(RewardEarned {
            user_id: Id::user(referrer),
            reward_id: Id {
                prefix: "reward",
                n: self.ids.reward,
            },
            amount: cents as f64 / 100.0,
            kind: reward_type,
            program_id: Some(ProgramId(program)),
            referral_id: Some(self.code_id(code)),
        })
    }

    pub(crate) fn leaderboard_updated(&mut self) -> Option<Payload> {
        let first = self.rng.random_range(0..self.boards.len().max(1));
        for k in 0..self.boards.len() {
            let i = (first + k) % self.boards.len();
            let now = self.now;
            let changes = self.boards[i].changes(now);
            if !changes.is_empty() {
                return Some(Payload::LeaderboardUpdated(LeaderboardUpdated {
                    board_id: self.boards[i].id,
                    changes: changes
                        .into_iter()
                        .map(|(user, position, delta)| RankChange {
                            user_id: Id::user(user),
                            position,
                            delta,
                        })
                        .collect(),
                }));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_valid_and_varied() {
        let mut v6 = 0;
        let mut distinct = std::collections::BTreeSet::new();
        for i in 0..10_000u64 {
            let ip = visitor_ip(mix64(i));
            let text = ip.to_string();
            assert_eq!(text.parse::<IpAddr>().unwrap(), ip);
            assert!(!ip.is_loopback() && !ip.is_unspecified());
            if let IpAddr::V4(v4) = ip {
                assert!(!v4.is_private() && !v4.is_documentation(), "{v4}");
            } else {
                v6 += 1;
            }
            distinct.insert(text);
        }
        assert!(v6 > 1_000 && v6 < 3_000, "{v6}");
        assert!(distinct.len() > 9_900);
        assert!(hosting_ip(42).to_string().parse::<IpAddr>().is_ok());
    }

    #[test]
    fn agents_follow_weights() {
        let iphone = (0..10_000u64)
            .filter(|i| visitor_agent(mix64(*i)).contains("iPhone OS 18_1"))
            .count();
        assert!(iphone > 1_500 && iphone < 3_000, "{iphone}");
    }
}
