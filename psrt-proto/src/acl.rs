//! Access control: per-user rights built from the ACL file, and the checks
//! the broker runs on every publish and subscribe.
//!
//! A subscribe is allowed only when *every* topic the filter can match is
//! matched by at least one of the user's `sub` masks. Upstream compared a
//! filter with the masks level by level, so `sub: [a/+]` let a user
//! subscribe `a/#` and receive `a/b/c`; [`UserRights::may_subscribe`] closes
//! that hole while still accepting filters that only the union of several
//! masks covers (`sub: [+, +/#]` allows `#`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::topic::{self, Level, TopicError};

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
    /// Grants `/metrics` only (a scraper's own credentials).
    pub metrics: bool,
}

/// A mask in an ACL file that is not a valid filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ACL entry {login:?}: invalid mask {mask:?}: {reason}")]
#[non_exhaustive]
pub struct AclError {
    /// The login whose entry holds the mask (`_` for anonymous).
    pub login: String,
    /// The mask as written.
    pub mask: String,
    /// Why it was refused.
    pub reason: TopicError,
}

/// Validated rights of one user: what the broker consults on each
/// operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRights {
    sub: Vec<String>,
    publish: Vec<String>,
    admin: bool,
    replicator: bool,
    metrics: bool,
}

impl UserRights {
    /// Everything allowed: Unix-socket sessions and servers without an ACL
    /// file.
    pub fn full() -> UserRights {
        UserRights {
            sub: vec!["#".to_owned()],
            publish: vec!["#".to_owned()],
            admin: true,
            replicator: true,
            metrics: true,
        }
    }

    /// Nothing allowed: sessions whose login lost its ACL entry in a reload.
    pub fn none() -> UserRights {
        UserRights {
            sub: Vec::new(),
            publish: Vec::new(),
            admin: false,
            replicator: false,
            metrics: false,
        }
    }

    /// Whether the user may publish to `topic` (normalised): some `pub` mask
    /// matches it.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish
            .iter()
            .any(|mask| topic::filter_matches(mask, topic))
    }

    /// Whether the user may subscribe `filter` (validated, normalised):
    /// every topic it can match is matched by some `sub` mask.
    ///
    /// Conservative in two ways, both denying rather than allowing: topic
    /// depth is treated as unbounded (masks that only cover a filter up to
    /// `max_topic_depth` do not count), and a check exploring more than
    /// [`COVER_BUDGET`] states is refused.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        let masks: Vec<Vec<&str>> = self.sub.iter().map(|m| m.split('/').collect()).collect();
        let filter: Vec<&str> = filter.split('/').collect();
        Cover::new(&filter, &masks).check()
    }

    /// Whether the user may read the stats pages.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the user may read `/metrics`: admins, and users whose ACL
    /// entry has `metrics: true`.
    pub fn may_read_metrics(&self) -> bool {
        self.admin || self.metrics
    }

    /// Whether the user may send PUBLISH_REPL (cluster peers).
    pub fn is_replicator(&self) -> bool {
        self.replicator
    }

    fn from_entry(login: &str, entry: AclEntry, max_depth: usize) -> Result<Self, AclError> {
        Ok(UserRights {
            sub: parse_masks(login, entry.sub, max_depth)?,
            publish: parse_masks(login, entry.publish, max_depth)?,
            admin: entry.admin,
            replicator: entry.replicator,
            metrics: entry.metrics,
        })
    }
}

/// The rights of every login, as loaded from the ACL file (or "allow all"
/// when none is configured). Rights are shared as `Arc`s so a reload can
/// swap the whole table while sessions keep a cheap handle.
#[derive(Debug, Clone)]
pub struct Acl {
    users: HashMap<String, Arc<UserRights>>,
    /// Rights of any login without an entry; `None` denies it.
    fallback: Option<Arc<UserRights>>,
}

impl Acl {
    /// Validates every mask of every entry (with
    /// [`topic::parse_filter`]) and stores them normalised. Logins are as in
    /// the file, `_` being the anonymous user.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, AclEntry)>,
        max_depth: usize,
    ) -> Result<Acl, AclError> {
        let users = entries
            .into_iter()
            .map(|(login, entry)| {
                let rights = UserRights::from_entry(&login, entry, max_depth)?;
                Ok((login, Arc::new(rights)))
            })
            .collect::<Result<_, AclError>>()?;
        Ok(Acl {
            users,
            fallback: None,
        })
    }

    /// No ACL file configured: every login, anonymous included, gets
    /// [`UserRights::full`].
    pub fn allow_all() -> Acl {
        Acl {
            users: HashMap::new(),
            fallback: Some(Arc::new(UserRights::full())),
        }
    }

    /// The rights of `login` (empty = anonymous, looked up as `_`); `None`
    /// when the login has no entry, which makes the login fail.
    pub fn rights(&self, login: &str) -> Option<Arc<UserRights>> {
        let key = if login.is_empty() { "_" } else { login };
        self.users.get(key).or(self.fallback.as_ref()).cloned()
    }
}

/// Most (depth, filter state, live masks) states one
/// [`UserRights::may_subscribe`] check explores before denying. Honest
/// ACLs need a few dozen; the bound keeps a hostile filter against a large
/// mask list from costing more than a few milliseconds.
pub const COVER_BUDGET: usize = 4096;

fn parse_masks(login: &str, masks: Vec<String>, max_depth: usize) -> Result<Vec<String>, AclError> {
    masks
        .into_iter()
        .map(
            |mask| match topic::parse_filter(mask.as_bytes(), max_depth) {
                Ok(normal) => Ok(normal.into_owned()),
                Err(reason) => Err(AclError {
                    login: login.to_owned(),
                    mask,
                    reason,
                }),
            },
        )
        .collect()
}

/// The "does the union of the masks cover the filter" search.
///
/// It walks the topics the filter matches one level at a time, tracking
/// which masks still match the prefix read so far. Level names outside the
/// masks' literals all behave the same, so at each level it tries each
/// literal a live mask expects there plus one fresh name. A mask reaching
/// its `#` covers every longer topic, which ends that branch; otherwise
/// every mask is shorter than the depth eventually, so the search ends.
/// States already proven covered are remembered.
struct Cover<'a> {
    filter: &'a [&'a str],
    masks: &'a [Vec<&'a str>],
    seen: HashSet<State>,
}

/// A point of the search: `depth` levels read; the filter still at its
/// level `depth`, or (`filter_hash`) past a `#` so any continuation is in
/// it; `live` = indices of the masks matching the prefix, none past a `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    depth: usize,
    filter_hash: bool,
    live: Vec<usize>,
}

impl<'a> Cover<'a> {
    fn new(filter: &'a [&'a str], masks: &'a [Vec<&'a str>]) -> Self {
        Cover {
            filter,
            masks,
            seen: HashSet::new(),
        }
    }

    fn check(mut self) -> bool {
        let start = State {
            depth: 0,
            filter_hash: false,
            live: (0..self.masks.len()).collect(),
        };
        self.covered(start)
    }

    fn covered(&mut self, state: State) -> bool {
        if self.seen.contains(&state) {
            return true;
        }
        // The filter can always be completed into some topic, and with no
        // live mask that topic is denied.
        if state.live.is_empty() || self.seen.len() >= COVER_BUDGET {
            return false;
        }
        if self.filter_ends(&state) && !self.some_mask_ends(&state) {
            return false;
        }
        if self.some_mask_hashes(&state) {
            return true;
        }
        let Some(names) = self.next_names(&state) else {
            self.seen.insert(state);
            return true;
        };
        for name in names {
            let next = self.step(&state, name);
            if !self.covered(next) {
                return false;
            }
        }
        self.seen.insert(state);
        true
    }

    /// The filter's level at this state (`None` once it is past `#` or has
    /// ended).
    fn filter_level(&self, state: &State) -> Option<Level<'a>> {
        if state.filter_hash {
            return None;
        }
        self.filter.get(state.depth).map(|l| Level::of(l))
    }

    /// Whether the topic may end here and still match the filter.
    fn filter_ends(&self, state: &State) -> bool {
        state.filter_hash || state.depth == self.filter.len()
    }

    fn some_mask_ends(&self, state: &State) -> bool {
        state.live.iter().any(|&m| self.mask_len(m) == state.depth)
    }

    /// A live mask at `#` here matches every topic with one more level or
    /// more: all continuations are covered.
    fn some_mask_hashes(&self, state: &State) -> bool {
        state
            .live
            .iter()
            .any(|&m| self.mask_level(m, state.depth) == Some(Level::Hash))
    }

    /// The level names worth trying next, `None` when the filter accepts no
    /// more levels. A `None` entry stands for a fresh name no mask
    /// mentions.
    fn next_names(&self, state: &State) -> Option<Vec<Option<&'a str>>> {
        match self.filter_level(state) {
            Some(Level::Literal(text)) => Some(vec![Some(text)]),
            None if !state.filter_hash => None,
            _ => {
                let mut names: Vec<Option<&'a str>> = vec![None];
                for &m in &state.live {
                    if let Some(Level::Literal(text)) = self.mask_level(m, state.depth)
                        && !names.contains(&Some(text))
                    {
                        names.push(Some(text));
                    }
                }
                Some(names)
            }
        }
    }

    /// Reads one level named `name` (`None` = a fresh name).
    fn step(&self, state: &State, name: Option<&str>) -> State {
        let filter_hash = state.filter_hash || self.filter_level(state) == Some(Level::Hash);
        let live = state
            .live
            .iter()
            .copied()
            .filter(|&m| match self.mask_level(m, state.depth) {
                Some(Level::Plus) => true,
                Some(Level::Literal(text)) => name == Some(text),
                Some(Level::Hash) | None => false,
            })
            .collect();
        State {
            depth: state.depth + 1,
            filter_hash,
            live,
        }
    }

    fn mask_len(&self, mask: usize) -> usize {
        self.masks.get(mask).map_or(0, Vec::len)
    }

    fn mask_level(&self, mask: usize, depth: usize) -> Option<Level<'a>> {
        let level = self.masks.get(mask)?.get(depth)?;
        Some(Level::of(level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rights(sub: &[&str], publish: &[&str]) -> UserRights {
        let entry = AclEntry {
            sub: sub.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            admin: false,
            replicator: false,
            metrics: false,
        };
        UserRights::from_entry("u", entry, 32).expect("valid masks")
    }

    #[test]
    fn a_single_level_mask_does_not_allow_hash() {
        let r = rights(&["a/+"], &[]);
        assert!(r.may_subscribe("a/+"));
        assert!(r.may_subscribe("a/b"));
        assert!(!r.may_subscribe("a/#"));
        assert!(!r.may_subscribe("a/b/c"));
        assert!(!r.may_subscribe("a"));
        assert!(!r.may_subscribe("#"));
    }

    #[test]
    fn the_union_of_masks_can_cover_a_filter() {
        let r = rights(&["+", "+/#"], &[]);
        assert!(r.may_subscribe("#"));
        assert!(!rights(&["+"], &[]).may_subscribe("#"));
        assert!(!rights(&["+/#"], &[]).may_subscribe("#"));
        let split = rights(&["a/x", "a/+/#"], &[]);
        assert!(!split.may_subscribe("a/#"));
        let whole = rights(&["a/+", "a/+/#"], &[]);
        assert!(whole.may_subscribe("a/#"));
    }

    #[test]
    fn hash_masks_cover_deeper_filters_but_not_the_parent() {
        let r = rights(&["a/#"], &[]);
        assert!(r.may_subscribe("a/+/c"));
        assert!(r.may_subscribe("a/#"));
        assert!(r.may_subscribe("a/+"));
        assert!(r.may_subscribe("a/b/"));
        assert!(!r.may_subscribe("a"));
        assert!(!r.may_subscribe("+/b"));
        assert!(!r.may_subscribe("#"));
    }

    #[test]
    fn literals_are_covered_only_by_matching_masks() {
        let r = rights(&["a/b", "c/+"], &[]);
        assert!(r.may_subscribe("a/b"));
        assert!(!r.may_subscribe("a/c"));
        assert!(!r.may_subscribe("+/b"));
        assert!(r.may_subscribe("c/d"));
        assert!(!rights(&[], &[]).may_subscribe("a"));
    }

    #[test]
    fn publish_needs_a_matching_mask() {
        let r = rights(&["#"], &["data/+", "cmd/#"]);
        assert!(r.may_publish("data/x"));
        assert!(!r.may_publish("data/x/y"));
        assert!(r.may_publish("cmd/a/b"));
        assert!(!r.may_publish("cmd"));
        assert!(!rights(&["#"], &[]).may_publish("a"));
    }

    #[test]
    fn full_rights_allow_everything() {
        let r = UserRights::full();
        assert!(r.is_admin() && r.is_replicator());
        assert!(r.may_subscribe("#"));
        assert!(r.may_subscribe("a/+/b"));
        assert!(r.may_publish("a/b/"));
    }

    #[test]
    fn acl_validates_and_normalises_masks() {
        let entry = AclEntry {
            sub: vec!["//a//+".into()],
            publish: vec!["a/#".into()],
            admin: true,
            replicator: false,
            metrics: false,
        };
        let acl = Acl::from_entries([("bob".to_string(), entry)], 8).expect("valid");
        let bob = acl.rights("bob").expect("bob has an entry");
        assert!(bob.may_subscribe("a/b"));
        assert!(bob.is_admin() && !bob.is_replicator());
        assert!(acl.rights("alice").is_none());
        assert!(acl.rights("").is_none());

        let bad = AclEntry {
            publish: vec!["a/#/b".into()],
            ..AclEntry::default()
        };
        let err = Acl::from_entries([("eve".to_string(), bad)], 8).expect_err("invalid");
        assert_eq!(err.login, "eve");
        assert_eq!(err.mask, "a/#/b");
        assert_eq!(err.reason, TopicError::BadWildcard);
        let text = err.to_string();
        assert!(text.contains("eve") && text.contains("a/#/b"), "{text}");
    }

    #[test]
    fn anonymous_is_the_underscore_entry() {
        let anon = AclEntry {
            sub: vec!["pub/#".into()],
            ..AclEntry::default()
        };
        let acl = Acl::from_entries([("_".to_string(), anon)], 8).expect("valid");
        let rights = acl.rights("").expect("anonymous entry");
        assert!(rights.may_subscribe("pub/x"));
        assert!(!rights.is_admin());
        let all = Acl::allow_all();
        assert_eq!(all.rights("").as_deref(), Some(&UserRights::full()));
        assert_eq!(all.rights("anyone").as_deref(), Some(&UserRights::full()));
    }

    /// Masks `+/+/c/+...` (literal `c` at one position) plus one all-`+`
    /// mask: the filter is covered, but tracking which literal masks are
    /// still alive makes `literals ^ levels` distinct states.
    fn combinatorial(levels: usize, literals: usize) -> UserRights {
        let mut masks = vec![vec!["+"; levels].join("/")];
        let names: Vec<String> = (0..literals).map(|c| c.to_string()).collect();
        for position in 0..levels {
            for name in &names {
                let mut mask = vec!["+"; levels];
                if let Some(slot) = mask.get_mut(position) {
                    *slot = name;
                }
                masks.push(mask.join("/"));
            }
        }
        let masks: Vec<&str> = masks.iter().map(String::as_str).collect();
        rights(&masks, &[])
    }

    #[test]
    fn exploration_is_bounded_and_denies_when_exhausted() {
        let filter = |levels: usize| vec!["+"; levels].join("/");
        assert!(combinatorial(4, 3).may_subscribe(&filter(4)));
        assert!(!combinatorial(10, 3).may_subscribe(&filter(10)));
        assert!(!combinatorial(10, 3).may_subscribe(&filter(11)));
    }

    /// Every topic over `alphabet` with 1..=`max_len` levels.
    fn all_topics(alphabet: &[&str], max_len: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut layer = vec![String::new()];
        for len in 1..=max_len {
            let mut next = Vec::new();
            for prefix in &layer {
                for name in alphabet {
                    let topic = if len == 1 {
                        (*name).to_owned()
                    } else {
                        format!("{prefix}/{name}")
                    };
                    next.push(topic);
                }
            }
            out.extend(next.iter().cloned());
            layer = next;
        }
        out
    }

    fn brute_force(masks: &[String], filter: &str) -> bool {
        let mut alphabet: Vec<&str> = masks
            .iter()
            .map(String::as_str)
            .chain([filter])
            .flat_map(|f| f.split('/'))
            .filter(|l| *l != "+" && *l != "#")
            .collect();
        alphabet.push("fresh");
        alphabet.sort_unstable();
        alphabet.dedup();
        let longest = masks
            .iter()
            .map(String::as_str)
            .chain([filter])
            .map(|f| f.split('/').count())
            .max()
            .unwrap_or(0);
        all_topics(&alphabet, longest + 2)
            .iter()
            .filter(|t| topic::filter_matches(filter, t))
            .all(|t| masks.iter().any(|m| topic::filter_matches(m, t)))
    }

    /// A normalised filter over a small alphabet: `#` only last, empty
    /// levels only last.
    fn filter() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "", "+", "+", "#", "#"]);
        prop::collection::vec(level, 1..4).prop_map(|levels| {
            let last = levels.len() - 1;
            let fixed: Vec<&str> = (0..)
                .zip(&levels)
                .map(|(i, l)| match *l {
                    "#" if i != last => "+",
                    "" if i != last || i == 0 => "a",
                    other => other,
                })
                .collect();
            fixed.join("/")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn may_subscribe_agrees_with_brute_force(
            masks in prop::collection::vec(filter(), 0..4),
            candidate in filter(),
        ) {
            let r = rights(&masks.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
            prop_assert_eq!(
                r.may_subscribe(&candidate),
                brute_force(&masks, &candidate),
                "masks {:?} filter {}", masks, candidate
            );
        }
    }
}
