//! How both daemons print the error that stops them: one line, the error and its causes joined
//! by ": " (as anyhow's `{:#}` does), except that a cause whose text its parent already quotes
//! is left out. Our error types put the OS error into their own message (`{path}: {source}`)
//! and also return it as their `source()`, so the plain chain says it twice
//! (`/dev/shm/xroute-default: Permission denied (os error 13): Permission denied (os error 13)`).

use std::error::Error;

/// `e` and its causes on one line, without causes their parent already quotes.
pub fn error_line(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut parent = line.clone();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parent.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        parent = text;
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;
    use std::fmt;
    use std::io;

    /// An error that quotes its source in its own message, as ours do.
    #[derive(Debug)]
    struct Quoting(io::Error);

    impl fmt::Display for Quoting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "/dev/shm/x: {}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// A context layer that does not quote its source.
    #[derive(Debug)]
    struct Context(&'static str, Box<dyn std::error::Error + 'static>);

    impl fmt::Display for Context {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.1.as_ref())
        }
    }

    #[test]
    fn a_quoted_cause_is_said_once_and_an_unquoted_one_is_kept() {
        let denied = || io::Error::from_raw_os_error(libc::EACCES);
        let quoting = Quoting(denied());
        assert_eq!(
            error_line(&quoting),
            "/dev/shm/x: Permission denied (os error 13)"
        );
        let wrapped = Context("opening the channel", Box::new(Quoting(denied())));
        assert_eq!(
            error_line(&wrapped),
            "opening the channel: /dev/shm/x: Permission denied (os error 13)"
        );
        let plain = Context("creating /run/xroute", Box::new(denied()));
        assert_eq!(
            error_line(&plain),
            "creating /run/xroute: Permission denied (os error 13)"
        );
    }
}
