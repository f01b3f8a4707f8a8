//! A run's settings: which faults it injects, and the rest of the command
//! line as the checker takes it.

use std::path::PathBuf;

/// Which faults a run injects.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub delay: bool,
    pub drop_reply: bool,
    pub late_write: bool,
    pub reset: bool,
    /// Kill and restart DynamoDB Local (`kills` times).
    pub kill: bool,
    /// Skew the clocks of half the instances.
    pub skew: bool,
}

impl Faults {
    pub const NAMES: [&'static str; 6] =
        ["delay", "drop-reply", "late-write", "reset", "kill", "skew"];

    /// From a comma-separated list of [`Faults::NAMES`], `all` or `none`.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => {
                    faults = Faults {
                        delay: true,
                        drop_reply: true,
                        late_write: true,
                        reset: true,
                        kill: true,
                        skew: true,
                    }
                }
                "none" => faults = Faults::default(),
                "delay" => faults.delay = true,
                "drop-reply" => faults.drop_reply = true,
                "late-write" => faults.late_write = true,
                "reset" => faults.reset = true,
                "kill" => faults.kill = true,
                "skew" => faults.skew = true,
                other => {
                    return Err(format!(
                        "--faults: {other:?} is not a fault; name some of {} (comma-separated), all or none",
                        Faults::NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(faults)
    }

    pub fn names(&self) -> Vec<String> {
        let on = [
            self.delay,
            self.drop_reply,
            self.late_write,
            self.reset,
            self.kill,
            self.skew,
        ];
        Faults::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| (*n).to_owned())
            .collect()
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub instances: usize,
    pub clients: usize,
    pub operations: usize,
    /// Call deadlines are drawn from this range (ms).
    pub deadline_ms: (u64, u64),
    pub faults: Faults,
    /// Times DynamoDB Local is killed and restarted (with `kill`).
    pub kills: u32,
    /// Largest clock skew of an instance, ms (with `skew`).
    pub skew_max_ms: i64,
    /// Ordinary accounts per currency (each currency also has one sharded).
    pub accounts_per_currency: usize,
    /// The shard count the instances promote a hot ordinary account to
    /// (their `PAYMENT_PROMOTE_SHARDS`), or None: promotion off.
    pub promote_shards: Option<u32>,
    pub server_bin: PathBuf,
    pub dynamodb_script: PathBuf,
    /// Where logs and DynamoDB's data go (a fresh folder under it).
    pub workdir: PathBuf,
    /// Print progress on stderr.
    pub progress: bool,
    /// The command line that repeats this run (for the report).
    pub reproduce: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_names_all_and_none() {
        let all = Faults::parse("all").unwrap();
        assert_eq!(all.names(), Faults::NAMES.to_vec());
        assert!(Faults::parse("none").unwrap().names().is_empty());
        assert!(Faults::parse("").unwrap().names().is_empty());
        let some = Faults::parse("late-write, kill").unwrap();
        assert_eq!(some.names(), ["late-write", "kill"]);
        let err = Faults::parse("delay,flood").unwrap_err();
        assert!(err.starts_with("--faults: \"flood\""), "{err}");
    }
}
