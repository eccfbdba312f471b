//! Helpers shared by the integration tests in `tests/tests/`.

use std::path::PathBuf;
use xroute_engine::table;

/// The shared full Internet table, or a printed reason and `None` when it is not there
/// (tests then skip; CI always has it beside the checkout).
pub fn real_table() -> Option<PathBuf> {
    let p = table::shared_path(table::REAL_TABLE);
    if p.is_none() {
        eprintln!(
            "SKIP: ../shared/{} not found (set XROUTE_SHARED to the shared folder)",
            table::REAL_TABLE
        );
    }
    p
}

pub mod harness;
pub mod router;
