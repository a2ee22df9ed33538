//! Access control (in progress).

/// One user's rights as written in the ACL file, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclEntry {
    /// Masks the user may subscribe within (topics with `+`/`#`).
    pub sub: Vec<String>,
    /// Masks the user may publish within.
    pub publish: Vec<String>,
    /// Grants the stats pages.
    pub admin: bool,
    /// Grants the PUBLISH_REPL operation.
    pub replicator: bool,
}
