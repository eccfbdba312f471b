//! The build targets x86-64-v2 (see `.cargo/config.toml`): the FIB counts bits with POPCNT on
//! every trie step. A CPU without those instructions would die of SIGILL somewhere deep inside;
//! checking at start-up turns that into one clear line.

/// Fails with an explanation when the CPU lacks an instruction set extension this binary was
/// compiled to use.
pub fn check() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        macro_rules! need {
            ($f:tt) => {
                if cfg!(target_feature = $f) && !std::arch::is_x86_feature_detected!($f) {
                    missing.push($f);
                }
            };
        }
        need!("popcnt");
        need!("sse4.2");
        need!("ssse3");
        need!("avx2");
        need!("bmi2");
        if !missing.is_empty() {
            return Err(format!(
                "this xroute build uses CPU instructions this machine lacks ({}); rebuild with \
                 RUSTFLAGS=\"-C target-cpu=native\" (slower FIB if POPCNT is missing)",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// Whether the build uses hardware POPCNT (reported in benchmarks and `--version` output).
pub const HARDWARE_POPCNT: bool = cfg!(target_feature = "popcnt");

#[cfg(test)]
mod tests {
    #[test]
    #[expect(
        clippy::assertions_on_constants,
        reason = "the constant is the build configuration under test"
    )]
    fn this_machine_runs_this_build() {
        assert_eq!(super::check(), Ok(()));
        assert!(
            super::HARDWARE_POPCNT,
            "the default build must use POPCNT (.cargo/config.toml)"
        );
    }
}
