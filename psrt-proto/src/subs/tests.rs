use super::*;
use crate::topic::filter_matches;
use proptest::prelude::*;

fn lookup_sorted(index: &SubIndex, topic: &str) -> Vec<u32> {
    let mut out = Vec::new();
    index.lookup(topic, &mut out);
    out.sort_unstable();
    out
}

/// Removes the pair by its filter text, as the broker does.
fn remove(index: &mut SubIndex, filter: &str, client: u32) -> bool {
    index
        .find(filter)
        .is_some_and(|id| index.remove(id, client))
}

/// Slab nodes in use (the root included).
fn live_nodes(index: &SubIndex) -> usize {
    index.nodes.len() - index.free.len()
}

#[test]
fn insert_and_remove_report_novelty() {
    let mut index = SubIndex::new();
    assert!(index.is_empty());
    assert!(index.insert("a/b", 1).1);
    assert!(!index.insert("a/b", 1).1);
    assert!(index.insert("a/b", 2).1);
    assert!(index.insert("a/#", 1).1);
    assert_eq!(index.len(), 3);
    assert!(remove(&mut index, "a/b", 1));
    assert!(!remove(&mut index, "a/b", 1));
    assert!(!remove(&mut index, "x/y", 1));
    assert!(!remove(&mut index, "a/+", 1));
    assert!(!remove(&mut index, "#", 1));
    assert_eq!(index.len(), 2);
}

#[test]
fn filter_ids_name_their_filter() {
    let mut index = SubIndex::new();
    let filters = ["a/b", "a/+/c", "a/#", "#", "+", "a/b/", "x/+/+/#"];
    let ids: Vec<FilterId> = filters.iter().map(|f| index.insert(f, 1).0).collect();
    for (filter, id) in filters.iter().zip(&ids) {
        assert_eq!(index.find(filter), Some(*id), "{filter}");
        assert_eq!(index.filter(*id), *filter);
    }
    assert_eq!(index.insert("a/b", 2).0, ids[0]);
    assert_eq!(index.find("a"), None, "a prefix nobody holds");
    assert_eq!(index.find("a/b/c"), None);
    assert!(index.remove(ids[0], 1));
    assert_eq!(index.find("a/b"), Some(ids[0]), "client 2 still holds it");
    assert!(!index.remove(FilterId(u32::MAX), 1));
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
fn deep_topics_beyond_the_memo_still_match() {
    let mut index = SubIndex::new();
    let deep: Vec<String> = (0..MEMO_LEVELS + 4).map(|i| i.to_string()).collect();
    let topic = deep.join("/");
    index.insert(&topic, 1);
    let mut wild = deep.clone();
    wild[MEMO_LEVELS + 1] = "+".into();
    index.insert(&wild.join("/"), 2);
    assert_eq!(lookup_sorted(&index, &topic), vec![1, 2]);
}

#[test]
fn has_match_sees_wildcards_and_ignores_parents() {
    let mut index = SubIndex::new();
    assert!(!index.has_match("a"));
    index.insert("a/#", 1);
    assert!(!index.has_match("a"));
    assert!(index.has_match("a/b/c"));
    remove(&mut index, "a/#", 1);
    assert!(!index.has_match("a/b/c"));
}

#[test]
fn subscriber_sets_grow_past_inline_and_come_back() {
    let mut index = SubIndex::new();
    let (id, _) = index.insert("t", 10);
    for client in (0..10).rev() {
        assert!(index.insert("t", client).1);
    }
    assert_eq!(lookup_sorted(&index, "t"), (0..=10).collect::<Vec<_>>());
    for client in 0..9 {
        assert!(index.remove(id, client));
    }
    assert_eq!(lookup_sorted(&index, "t"), vec![9, 10]);
    let node = &index.nodes[id.0 as usize];
    assert!(matches!(node.subs, Subs::Inline { len: 2, .. }));
    assert_eq!(index.sets.free.len(), index.sets.sets.len(), "set freed");
}

#[test]
fn removal_prunes_every_node_and_level() {
    let mut index = SubIndex::new();
    let filters = ["a/b/c", "a/+/c", "a/#", "+/x/#", "#", "a/b/"];
    for (client, filter) in (0..).zip(filters) {
        index.insert(filter, client);
    }
    index.insert("a/b/c", 9);
    let shared = live_nodes(&index);
    remove(&mut index, "a/b/c", 0);
    assert_eq!(live_nodes(&index), shared, "a/b/c is still held by 9");
    remove(&mut index, "a/b/c", 9);
    assert_eq!(live_nodes(&index), shared - 1, "c under a/b freed");
    assert!(index.levels.find("c").is_some(), "a/+/c still uses c");
    remove(&mut index, "a/b/", 5);
    assert_eq!(index.find("a/b/"), None);
    assert!(index.levels.find("b").is_none(), "nothing uses b");
    remove(&mut index, "a/+/c", 1);
    assert!(index.levels.find("c").is_none());
    for (client, filter) in (0..).zip(filters) {
        remove(&mut index, filter, client);
    }
    assert!(index.is_empty());
    assert_eq!(index.nodes.capacity(), 1, "an emptied index starts over");
    assert_eq!(index.edges.capacity(), 0);
}

#[test]
fn nodes_stay_small() {
    assert!(std::mem::size_of::<Node>() <= 32);
    assert!(std::mem::size_of::<Edge>() <= 12);
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
            let (id, added) = index.insert(f, *c);
            prop_assert_eq!(added, new);
            prop_assert_eq!(index.filter(id), f.clone());
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
            for (f, _) in pairs {
                let id = index.find(f);
                prop_assert!(id.is_some(), "held filter {} not found", f);
                prop_assert_eq!(index.filter(id.unwrap_or(FilterId(0))), f.clone());
            }
            Ok(())
        };
        check(&index, &pairs)?;
        for r in removals {
            if pairs.is_empty() {
                break;
            }
            let (f, c) = pairs.swap_remove(r.index(pairs.len()));
            prop_assert!(remove(&mut index, &f, c));
            prop_assert!(!remove(&mut index, &f, c));
            if !pairs.iter().any(|(g, _)| *g == f) {
                prop_assert_eq!(index.find(&f), None);
            }
            check(&index, &pairs)?;
        }
        for (f, c) in pairs.drain(..) {
            prop_assert!(remove(&mut index, &f, c));
        }
        prop_assert_eq!(live_nodes(&index), 1);
        prop_assert!(index.levels.table.is_empty());
    }
}

#[test]
fn changes_count_every_added_or_removed_pair() {
    let mut index = SubIndex::new();
    assert_eq!(index.changes(), 0);
    index.insert("a/b", 1);
    index.insert("a/b", 1);
    assert_eq!(index.changes(), 1, "a pair already held changes nothing");
    index.insert("a/+", 2);
    assert!(!remove(&mut index, "x", 1));
    assert_eq!(
        index.changes(),
        2,
        "removing a pair not held changes nothing"
    );
    assert!(remove(&mut index, "a/b", 1));
    assert!(remove(&mut index, "a/+", 2));
    assert!(index.is_empty());
    assert_eq!(index.changes(), 4, "emptying the index keeps the count");
}
