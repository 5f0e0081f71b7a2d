//! Where a client starts: the [`Bootstrap`] addresses every entry point
//! (`Producer::builder`, `Consumer::builder`, `GroupConsumer`, `Admin`)
//! takes. Owns only the conversion to a list of `host:port`; checking the
//! addresses is `net::address`'s.

/// Addresses to start from: one `host:port` (`&str`, `String`) or several
/// (an array, vector or slice of them).
pub trait Bootstrap {
    /// The addresses, in the order to try them.
    fn addresses(self) -> Vec<String>;
}

impl Bootstrap for &str {
    fn addresses(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl Bootstrap for String {
    fn addresses(self) -> Vec<String> {
        vec![self]
    }
}
impl Bootstrap for &String {
    fn addresses(self) -> Vec<String> {
        vec![self.clone()]
    }
}
impl<S: Into<String>> Bootstrap for Vec<S> {
    fn addresses(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String>, const N: usize> Bootstrap for [S; N] {
    fn addresses(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: AsRef<str>> Bootstrap for &Vec<S> {
    fn addresses(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<S: AsRef<str>> Bootstrap for &[S] {
    fn addresses(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
