//! `token`: mint a JWT for development and tests. Prints the token alone on stdout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use social_auth::Minter;

use super::auth_config;
use crate::cli::TokenArgs;

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let config = auth_config(&args.auth, args.demo)?;
    let minter = Minter::new(&config)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let non_empty = |values: &[String]| {
        values
            .iter()
            .filter(|value| !value.is_empty())
            .cloned()
            .collect::<Vec<_>>()
    };
    let token = minter.mint(
        &args.sub,
        &non_empty(&args.roles),
        &non_empty(&args.programs),
        Duration::from_secs(args.ttl),
        now,
    )?;
    println!("{token}");
    Ok(())
}
