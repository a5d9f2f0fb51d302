//! `delivery`: the delivery tier as its own process. It is fed through Redis by a separate `pipeline`, so it needs
//! `--redis-url`; without it there is nothing it could deliver, and it says so instead of serving an empty feed.

use crate::cli::DeliveryArgs;

pub(super) async fn delivery(args: DeliveryArgs) -> anyhow::Result<()> {
    if args.redis_url.is_none() {
        anyhow::bail!(
            "`delivery` as a separate process is fed through Redis: set --redis-url / REDIS_URL. \
             For one process with the embedded bus, use `social-realtime run`"
        );
    }
    anyhow::bail!(
        "the Redis-backed delivery tier is not available in this build; use `social-realtime run` (embedded mode)"
    )
}
