//! The subscription index: which clients hold a filter matching a topic.
//!
//! A level trie. Each node stands for a filter prefix; its children are the
//! next level, literal levels in a hash map (looked up by `&str`, so a lookup
//! never allocates) and the `+` level in its own slot. A filter ending at a
//! node puts its client in that node's `exact` set; a filter ending in `#`
//! puts it in the `hash` set of the node before the `#`.
//!
//! A lookup walks the topic's levels once, following the literal child and
//! the `+` child at every level and collecting the `hash` sets on the way
//! (`#` matches one or more remaining levels, never the parent itself), so
//! its cost depends on the topic's depth and on the wildcard filters along
//! its path, not on how many subscriptions exist.
//!
//! Per-node subscriber sets are [`IndexSet`]s: insertion and removal are O(1)
//! and iterating them is a walk over a dense vector.

use std::collections::HashMap;
use std::ops::ControlFlow;

use indexmap::IndexSet;

use crate::topic::Level;

/// Filters and the clients holding them, for routing published topics.
///
/// Clients are opaque `u32` keys (the broker's session slots). Filters must
/// already be validated and normalised with [`crate::topic::parse_filter`],
/// topics with [`crate::topic::parse_topic`].
#[derive(Debug, Default)]
pub struct SubIndex {
    root: Node,
    pairs: usize,
}

impl SubIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the pair (`filter`, `client`); returns `true` when it was new.
    pub fn insert(&mut self, filter: &str, client: u32) -> bool {
        let mut node = &mut self.root;
        let mut levels = filter.split('/');
        let set = loop {
            let Some(level) = levels.next() else {
                break &mut node.exact;
            };
            node = match Level::of(level) {
                Level::Hash => break &mut node.hash,
                Level::Plus => node.plus.get_or_insert_with(Box::default),
                Level::Literal(text) => node.children.entry(text.into()).or_default(),
            };
        };
        let added = set.insert(client);
        if added {
            self.pairs += 1;
        }
        added
    }

    /// Removes the pair (`filter`, `client`); returns `true` when it was
    /// there. Trie nodes left empty are freed, so the index shrinks back as
    /// clients leave.
    pub fn remove(&mut self, filter: &str, client: u32) -> bool {
        let removed = self.root.remove(Some(filter), client);
        if removed {
            self.pairs -= 1;
            if self.pairs == 0 {
                self.root = Node::default();
            }
        }
        removed
    }

    /// Clears `out`, then fills it with every client holding at least one
    /// filter that matches `topic`, each client once, in no particular
    /// order.
    ///
    /// Allocates nothing when `out` has the capacity: duplicates (a client
    /// with several matching filters) are removed by an in-place sort, and
    /// only when more than one trie node matched.
    pub fn lookup(&self, topic: &str, out: &mut Vec<u32>) {
        out.clear();
        let mut sources = 0_usize;
        let _ = self.root.visit(Some(topic), &mut |set| {
            if !set.is_empty() {
                sources += 1;
                out.extend(set.iter().copied());
            }
            ControlFlow::Continue(())
        });
        if sources > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Whether any client holds a filter matching `topic` (replication's
    /// NOT_REQUIRED answer). Stops at the first match.
    pub fn has_match(&self, topic: &str) -> bool {
        self.root
            .visit(Some(topic), &mut |set| {
                if set.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })
            .is_break()
    }

    /// Number of distinct (filter, client) pairs held.
    pub fn len(&self) -> usize {
        self.pairs
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }
}

/// One filter prefix.
#[derive(Debug, Default)]
struct Node {
    /// Next literal level.
    children: HashMap<Box<str>, Node>,
    /// Next level `+`.
    plus: Option<Box<Node>>,
    /// Clients whose filter ends exactly here.
    exact: IndexSet<u32>,
    /// Clients whose filter is this prefix followed by `#`.
    hash: IndexSet<u32>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.hash.is_empty()
    }

    /// Calls `found` with every subscriber set matching `rest` (the topic's
    /// remaining levels, `None` once they are all consumed) below this node.
    fn visit<'a>(
        &'a self,
        rest: Option<&str>,
        found: &mut impl FnMut(&'a IndexSet<u32>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let Some(rest) = rest else {
            return found(&self.exact);
        };
        found(&self.hash)?;
        let (level, tail) = split_level(rest);
        if let Some(child) = self.children.get(level) {
            child.visit(tail, found)?;
        }
        if let Some(plus) = &self.plus {
            plus.visit(tail, found)?;
        }
        ControlFlow::Continue(())
    }

    /// Removes `client` from the filter `rest` below this node, freeing
    /// children that become empty.
    fn remove(&mut self, rest: Option<&str>, client: u32) -> bool {
        let Some(rest) = rest else {
            return remove_from(&mut self.exact, client);
        };
        let (level, tail) = split_level(rest);
        match Level::of(level) {
            Level::Hash => remove_from(&mut self.hash, client),
            Level::Plus => {
                let Some(plus) = self.plus.as_mut() else {
                    return false;
                };
                let removed = plus.remove(tail, client);
                if plus.is_empty() {
                    self.plus = None;
                }
                removed
            }
            Level::Literal(text) => {
                let Some(child) = self.children.get_mut(text) else {
                    return false;
                };
                let removed = child.remove(tail, client);
                if child.is_empty() {
                    self.children.remove(text);
                    if self.children.is_empty() {
                        self.children = HashMap::new();
                    }
                }
                removed
            }
        }
    }
}

/// Removes `client` from `set`, releasing the set's memory once it is empty.
fn remove_from(set: &mut IndexSet<u32>, client: u32) -> bool {
    let removed = set.swap_remove(&client);
    if set.is_empty() {
        *set = IndexSet::new();
    }
    removed
}

/// Splits off the first level: `("a", Some("b/c"))` for `"a/b/c"`,
/// `("c", None)` for `"c"`.
fn split_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, tail)) => (level, Some(tail)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::filter_matches;
    use proptest::prelude::*;

    fn lookup_sorted(index: &SubIndex, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index.lookup(topic, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn insert_and_remove_report_novelty() {
        let mut index = SubIndex::new();
        assert!(index.is_empty());
        assert!(index.insert("a/b", 1));
        assert!(!index.insert("a/b", 1));
        assert!(index.insert("a/b", 2));
        assert!(index.insert("a/#", 1));
        assert_eq!(index.len(), 3);
        assert!(index.remove("a/b", 1));
        assert!(!index.remove("a/b", 1));
        assert!(!index.remove("x/y", 1));
        assert!(!index.remove("a/+", 1));
        assert!(!index.remove("#", 1));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn wildcards_follow_upstream_semantics() {
        let mut index = SubIndex::new();
        index.insert("a/+", 1);
        index.insert("a/#", 2);
        index.insert("#", 3);
        index.insert("a", 4);
        index.insert("b/+", 5);
        index.insert("+/+/c", 6);
        assert_eq!(lookup_sorted(&index, "a"), vec![3, 4]);
        assert_eq!(lookup_sorted(&index, "a/b"), vec![1, 2, 3]);
        assert_eq!(lookup_sorted(&index, "a/b/c"), vec![2, 3, 6]);
        assert_eq!(lookup_sorted(&index, "b/"), vec![3, 5]);
        assert_eq!(lookup_sorted(&index, "x/y/c"), vec![3, 6]);
        assert_eq!(lookup_sorted(&index, "x/y/d"), vec![3]);
    }

    #[test]
    fn a_client_with_several_matching_filters_appears_once() {
        let mut index = SubIndex::new();
        for filter in ["a/b", "a/+", "a/#", "#", "+/b"] {
            index.insert(filter, 7);
        }
        index.insert("a/b", 8);
        assert_eq!(lookup_sorted(&index, "a/b"), vec![7, 8]);
    }

    #[test]
    fn lookup_clears_the_output_first() {
        let mut index = SubIndex::new();
        index.insert("a", 1);
        let mut out = vec![99, 98];
        index.lookup("b", &mut out);
        assert!(out.is_empty());
        index.lookup("a", &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn lookup_with_capacity_does_not_reallocate() {
        let mut index = SubIndex::new();
        index.insert("a/b", 1);
        index.insert("a/+", 1);
        index.insert("a/#", 2);
        let mut out = Vec::with_capacity(8);
        let before = out.as_ptr();
        index.lookup("a/b", &mut out);
        assert_eq!(out.as_ptr(), before);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn has_match_sees_wildcards_and_ignores_parents() {
        let mut index = SubIndex::new();
        assert!(!index.has_match("a"));
        index.insert("a/#", 1);
        assert!(!index.has_match("a"));
        assert!(index.has_match("a/b/c"));
        index.remove("a/#", 1);
        assert!(!index.has_match("a/b/c"));
    }

    #[test]
    fn removal_prunes_every_node() {
        let mut index = SubIndex::new();
        let filters = ["a/b/c", "a/+/c", "a/#", "+/x/#", "#", "a/b/"];
        for (client, filter) in (0..).zip(filters) {
            index.insert(filter, client);
        }
        index.insert("a/b/c", 9);
        index.remove("a/b/c", 0);
        assert!(index.root.children.contains_key("a"));
        index.remove("a/b/c", 9);
        index.remove("a/b/", 5);
        let a = &index.root.children["a"];
        assert!(!a.children.contains_key("b"), "emptied branch a/b kept");
        for (client, filter) in (0..).zip(filters) {
            index.remove(filter, client);
        }
        assert!(index.is_empty());
        assert!(index.root.is_empty());
        assert_eq!(index.root.children.capacity(), 0);
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "", "+", "#"])
    }

    /// A normalised filter: `#` only last, empty levels only last.
    fn filter() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|levels| {
            let mut out = Vec::new();
            for (i, level) in levels.iter().enumerate() {
                let last = i + 1 == levels.len();
                let fixed = match *level {
                    "#" if !last => "+",
                    "" if !last || i == 0 => "a",
                    other => other,
                };
                out.push(fixed);
            }
            out.join("/")
        })
    }

    /// A normalised topic: empty levels only last, never the whole topic.
    fn topic() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "c", ""]);
        prop::collection::vec(level, 1..6).prop_map(|levels| {
            let last = levels.len() - 1;
            let fixed: Vec<&str> = (0..)
                .zip(&levels)
                .map(|(i, l)| {
                    if l.is_empty() && (i != last || i == 0) {
                        "c"
                    } else {
                        l
                    }
                })
                .collect();
            fixed.join("/")
        })
    }

    fn naive(pairs: &[(String, u32)], topic: &str) -> Vec<u32> {
        let mut out: Vec<u32> = pairs
            .iter()
            .filter(|(f, _)| filter_matches(f, topic))
            .map(|&(_, c)| c)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_the_naive_matcher(
            subs in prop::collection::vec((filter(), 0_u32..6), 0..40),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
            topics in prop::collection::vec(topic(), 1..20),
        ) {
            let mut index = SubIndex::new();
            let mut pairs: Vec<(String, u32)> = Vec::new();
            for (f, c) in &subs {
                let new = !pairs.contains(&(f.clone(), *c));
                prop_assert_eq!(index.insert(f, *c), new);
                if new {
                    pairs.push((f.clone(), *c));
                }
            }
            let check = |index: &SubIndex, pairs: &[(String, u32)]| -> Result<(), TestCaseError> {
                prop_assert_eq!(index.len(), pairs.len());
                for t in &topics {
                    let expected = naive(pairs, t);
                    prop_assert_eq!(lookup_sorted(index, t), expected.clone(), "topic {}", t);
                    prop_assert_eq!(index.has_match(t), !expected.is_empty());
                }
                Ok(())
            };
            check(&index, &pairs)?;
            for r in removals {
                if pairs.is_empty() {
                    break;
                }
                let (f, c) = pairs.swap_remove(r.index(pairs.len()));
                prop_assert!(index.remove(&f, c));
                prop_assert!(!index.remove(&f, c));
                check(&index, &pairs)?;
            }
            for (f, c) in pairs.drain(..) {
                prop_assert!(index.remove(&f, c));
            }
            prop_assert!(index.root.is_empty());
        }
    }
}
