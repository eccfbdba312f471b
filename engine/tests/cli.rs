//! `xroute-engine load-table` end to end: answers, JSON, and errors for bad input.

use std::process::Command;

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xroute-engine"))
}

fn table(text: &str) -> tempfile_path::TempFile {
    tempfile_path::TempFile::new(text)
}

/// A file removed on drop (no extra crate for one file).
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);
    impl TempFile {
        pub fn new(text: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("xroute-cli-{}-{}.txt", std::process::id(), text.len()));
            let mut f = std::fs::File::create(&p).expect("create");
            std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
            Self(p)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn loads_a_table_and_answers_lookups() {
    let t = table("# test routes\n198.18.0.0/15\n198.18.5.0/24\n2001:db8::/32\n");
    let out = engine()
        .args(["load-table", "--groups", "1", "--table"])
        .arg(&t.0)
        .args([
            "--lookup",
            "198.18.5.9",
            "--lookup",
            "192.0.2.1",
            "--lookup",
            "2001:db8::7",
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("routes    2 IPv4 + 1 IPv6"), "{stdout}");
    assert!(stdout.contains("lookup    198.18.5.9 -> group 1"), "{stdout}");
    assert!(stdout.contains("lookup    192.0.2.1 -> no route"), "{stdout}");
    assert!(stdout.contains("lookup    2001:db8::7 -> group 1"), "{stdout}");
}

#[test]
fn json_output_is_one_object() {
    let t = table("203.0.113.0/24\n");
    let out = engine()
        .args(["load-table", "--json", "--table"])
        .arg(&t.0)
        .args(["--lookup", "203.0.113.1"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.trim().starts_with('{') && s.trim().ends_with('}'), "{s}");
    assert!(s.contains("\"routes_v4\":1,"), "{s}");
    assert!(s.contains("{\"addr\":\"203.0.113.1\",\"group\":"), "{s}");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_1() {
    let t = table("10.0.0.0/8\n10.0.0.1/8\n");
    let out = engine()
        .args(["load-table", "--table"])
        .arg(&t.0)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains(":2: 10.0.0.1/8 has host bits set"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = engine()
        .args(["load-table", "--table", "/nonexistent/table.txt"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: cannot read /nonexistent/table.txt: No such file or directory (os error 2)"
    );

    let out = engine()
        .args(["load-table", "--groups", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "--groups 0 must be refused");
}
