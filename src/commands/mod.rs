//! One module per subcommand.

mod auth_config;
mod delivery;
mod generate;
mod run;
mod token;

pub use auth_config::{DEMO_SECRET, auth_config};
pub use generate::generate;
pub use run::{run_embedded, run_pipeline};
pub use token::token;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_embedded(args).await,
        Command::Pipeline(args) => run_pipeline(args).await,
        Command::Delivery(args) => delivery::delivery(args).await,
        Command::Generate(args) => generate(args).await,
        Command::Token(args) => token(args),
    }
}
