//! Listeners and the executor.
use crate::config::Config;

pub fn run(_cfg: Config) -> Result<(), String> {
    todo!("server")
}
