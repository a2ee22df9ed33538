//! The subscription index: which clients hold a filter matching a topic.
//!
//! A level trie laid out flat, so a subscription costs a few dozen bytes
//! rather than a few hundred:
//!
//! - Nodes live in one slab (`Vec<Node>`) and are named by `u32` ids; a
//!   node stands for a filter prefix and holds its parent, the level that
//!   leads to it, its `+` and `#` children, and its subscribers. Freed ids
//!   are reused.
//! - Literal levels are interned once ([`Levels`], reference counted), so
//!   `site/1/temp` and `site/2/temp` share the text `temp`, and the edges
//!   to literal children of every node sit in one hash table keyed by
//!   (parent id, level id).
//! - Subscribers of a node are a sorted small vector of client ids, inline
//!   up to two of them (a node is 32 bytes).
//!
//! A filter ending at a node puts its client in that node's set; a filter
//! ending in `#` puts it in the set of the `#` child of the node before
//! the `#`. The node where a filter ends names the filter
//! ([`FilterId`]): a session keeps those ids instead of the filter texts.
//!
//! A lookup walks the topic's levels once, following the literal child and
//! the `+` child at every level and collecting the `#` children's sets on
//! the way (`#` matches one or more remaining levels, never the parent
//! itself), so its cost depends on the topic's depth and on the wildcard
//! filters along its path, not on how many subscriptions exist.

use std::hash::BuildHasher;
use std::ops::ControlFlow;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::topic::Level;

/// No node.
const NONE: u32 = u32::MAX;
/// The root node's id: the empty prefix.
const ROOT: u32 = 0;
/// [`Node::level`] of a `+` node.
const PLUS: u32 = u32::MAX - 1;
/// [`Node::level`] of a `#` node.
const HASH: u32 = u32::MAX - 2;
/// [`Node::level`] of the root and of free slab slots.
const NO_LEVEL: u32 = u32::MAX;
/// Topic levels whose interned ids a lookup remembers, so a level is hashed
/// once however many branches reach it.
const MEMO_LEVELS: usize = 16;

/// A filter held in a [`SubIndex`]: stable while any client holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilterId(u32);

/// Filters and the clients holding them, for routing published topics.
///
/// Clients are opaque `u32` keys (the broker's session slots). Filters must
/// already be validated and normalised with [`crate::topic::parse_filter`],
/// topics with [`crate::topic::parse_topic`].
#[derive(Debug)]
pub struct SubIndex {
    nodes: Vec<Node>,
    free: Vec<u32>,
    edges: HashTable<Edge>,
    levels: Levels,
    sets: Sets,
    pairs: usize,
    /// Counts every change of the pairs held (see [`SubIndex::changes`]).
    changes: u64,
}

impl Default for SubIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl SubIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            nodes: vec![Node::new(NONE, NO_LEVEL)],
            free: Vec::new(),
            edges: HashTable::new(),
            levels: Levels::default(),
            sets: Sets::default(),
            pairs: 0,
            changes: 0,
        }
    }

    /// How many times a pair was added or removed: a [`SubIndex::lookup`]
    /// answer stays right while this stays the same, so a caller may keep
    /// it instead of walking the index again.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Adds the pair (`filter`, `client`): the filter's id, and whether the
    /// pair was new.
    pub fn insert(&mut self, filter: &str, client: u32) -> (FilterId, bool) {
        let mut node = ROOT;
        for level in filter.split('/') {
            match Level::of(level) {
                Level::Plus => node = self.wildcard_child(node, PLUS),
                Level::Hash => {
                    // `#` ends a valid filter.
                    node = self.wildcard_child(node, HASH);
                    break;
                }
                Level::Literal(text) => node = self.literal_child(node, text),
            }
        }
        let added = self.nodes[node as usize]
            .subs
            .insert(client, &mut self.sets);
        if added {
            self.pairs += 1;
            self.changes += 1;
        }
        (FilterId(node), added)
    }

    /// The id of `filter` when some client holds it.
    pub fn find(&self, filter: &str) -> Option<FilterId> {
        let mut node = ROOT;
        for level in filter.split('/') {
            let at = &self.nodes[node as usize];
            node = match Level::of(level) {
                Level::Plus => at.plus,
                Level::Hash => at.hash,
                Level::Literal(text) => self.edge(node, self.levels.find(text)?)?,
            };
            if node == NONE || level == "#" {
                break;
            }
        }
        (node != NONE && !self.nodes[node as usize].subs.is_empty()).then_some(FilterId(node))
    }

    /// Removes the pair (`filter`, `client`); returns `true` when it was
    /// there. Trie nodes left empty are freed, so the index shrinks back
    /// as clients leave.
    pub fn remove(&mut self, filter: FilterId, client: u32) -> bool {
        let Some(node) = self.nodes.get_mut(filter.0 as usize) else {
            return false;
        };
        if !node.subs.remove(client, &mut self.sets) {
            return false;
        }
        self.pairs -= 1;
        let changes = self.changes + 1;
        if self.pairs == 0 {
            *self = Self::new();
        } else {
            self.prune(filter.0);
        }
        self.changes = changes;
        true
    }

    /// The text of a filter held in the index (empty for an id it does
    /// not hold).
    pub fn filter(&self, filter: FilterId) -> String {
        let mut levels = Vec::new();
        let mut at = filter.0;
        while let Some(node) = self.nodes.get(at as usize)
            && at != ROOT
            && node.level != NO_LEVEL
        {
            levels.push(match node.level {
                PLUS => "+",
                HASH => "#",
                level => self.levels.name(level),
            });
            at = node.parent;
        }
        levels.reverse();
        levels.join("/")
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
        let mut memo = Memo::new();
        let _ = self.visit(ROOT, Some(topic), 0, &mut memo, &mut |set| {
            if !set.is_empty() {
                sources += 1;
                out.extend_from_slice(set);
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
        let mut memo = Memo::new();
        self.visit(ROOT, Some(topic), 0, &mut memo, &mut |set| {
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

    /// Calls `found` with every subscriber set matching `rest` (the topic's
    /// remaining levels, `None` once they are all consumed, the first of
    /// them at `depth`) below `node`.
    fn visit<'a>(
        &'a self,
        node: u32,
        rest: Option<&str>,
        depth: usize,
        memo: &mut Memo,
        found: &mut impl FnMut(&'a [u32]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let at = &self.nodes[node as usize];
        let Some(rest) = rest else {
            return found(at.subs.as_slice(&self.sets));
        };
        if at.hash != NONE {
            found(self.nodes[at.hash as usize].subs.as_slice(&self.sets))?;
        }
        let (level, tail) = split_level(rest);
        if at.kids > 0
            && let Some(id) = memo.level(&self.levels, depth, level)
            && let Some(child) = self.edge(node, id)
        {
            self.visit(child, tail, depth + 1, memo, found)?;
        }
        if at.plus != NONE {
            self.visit(at.plus, tail, depth + 1, memo, found)?;
        }
        ControlFlow::Continue(())
    }

    /// The literal child of `parent` at interned `level`.
    fn edge(&self, parent: u32, level: u32) -> Option<u32> {
        self.edges
            .find(edge_hash(parent, level), |e| {
                e.parent == parent && e.level == level
            })
            .map(|e| e.child)
    }

    /// The literal child `text` of `parent`, made when missing.
    fn literal_child(&mut self, parent: u32, text: &str) -> u32 {
        if let Some(level) = self.levels.find(text)
            && let Some(child) = self.edge(parent, level)
        {
            return child;
        }
        let level = self.levels.acquire(text);
        let child = self.alloc(parent, level);
        self.edges.insert_unique(
            edge_hash(parent, level),
            Edge {
                parent,
                level,
                child,
            },
            |e| edge_hash(e.parent, e.level),
        );
        self.nodes[parent as usize].kids += 1;
        child
    }

    /// The `+` or `#` child of `parent`, made when missing.
    fn wildcard_child(&mut self, parent: u32, kind: u32) -> u32 {
        let at = &self.nodes[parent as usize];
        let existing = if kind == PLUS { at.plus } else { at.hash };
        if existing != NONE {
            return existing;
        }
        let child = self.alloc(parent, kind);
        let at = &mut self.nodes[parent as usize];
        if kind == PLUS {
            at.plus = child;
        } else {
            at.hash = child;
        }
        child
    }

    /// A fresh node, in a freed slot when there is one.
    fn alloc(&mut self, parent: u32, level: u32) -> u32 {
        let node = Node::new(parent, level);
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                // Each node holds a distinct prefix of a held filter, and
                // pairs are bounded far below u32::MAX by the broker.
                u32::try_from(self.nodes.len() - 1).unwrap_or(NONE)
            }
        }
    }

    /// Frees `node` and then its ancestors while they hold nothing.
    fn prune(&mut self, mut node: u32) {
        while node != ROOT {
            let at = &self.nodes[node as usize];
            if !at.is_empty() {
                return;
            }
            let (parent, level) = (at.parent, at.level);
            let up = &mut self.nodes[parent as usize];
            match level {
                PLUS => up.plus = NONE,
                HASH => up.hash = NONE,
                level => {
                    up.kids -= 1;
                    let hash = edge_hash(parent, level);
                    if let Ok(edge) = self
                        .edges
                        .find_entry(hash, |e| e.parent == parent && e.level == level)
                    {
                        edge.remove();
                    }
                    self.levels.release(level);
                    self.shrink_edges();
                }
            }
            self.nodes[node as usize] = Node::new(NONE, NO_LEVEL);
            self.free.push(node);
            node = parent;
        }
    }

    /// Gives back edge-table memory once most of it is unused.
    fn shrink_edges(&mut self) {
        if self.edges.capacity() > 64 && self.edges.len() * 4 < self.edges.capacity() {
            self.edges
                .shrink_to(self.edges.len() * 2, |e| edge_hash(e.parent, e.level));
        }
    }
}

/// One filter prefix.
#[derive(Debug)]
struct Node {
    /// The node one level up ([`NONE`] for the root and free slots).
    parent: u32,
    /// The interned level leading here from the parent, or [`PLUS`],
    /// [`HASH`], [`NO_LEVEL`].
    level: u32,
    /// The `+` child, or [`NONE`].
    plus: u32,
    /// The `#` child, or [`NONE`].
    hash: u32,
    /// Literal children (edges in [`SubIndex::edges`]).
    kids: u32,
    /// Clients whose filter ends here.
    subs: Subs,
}

impl Node {
    fn new(parent: u32, level: u32) -> Self {
        Self {
            parent,
            level,
            plus: NONE,
            hash: NONE,
            kids: 0,
            subs: Subs::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.kids == 0 && self.plus == NONE && self.hash == NONE && self.subs.is_empty()
    }
}

/// An edge to a literal child.
#[derive(Debug)]
struct Edge {
    parent: u32,
    level: u32,
    child: u32,
}

/// The hash of an edge key: ids are ours (slab slots), so a fixed mix is
/// enough; the splitmix64 finaliser spreads them over every bit.
fn edge_hash(parent: u32, level: u32) -> u64 {
    let mut x = (u64::from(parent) << 32) | u64::from(level);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Clients inline up to this many.
const INLINE: usize = 2;

/// A sorted set of client ids: inline while small, else a vector in
/// [`Sets`] (by index, so a node stays 32 bytes).
#[derive(Debug)]
enum Subs {
    Inline { len: u8, ids: [u32; INLINE] },
    Heap(u32),
}

/// The vectors of the subscriber sets too large to be inline.
#[derive(Debug, Default)]
struct Sets {
    sets: Vec<Vec<u32>>,
    free: Vec<u32>,
}

impl Default for Subs {
    fn default() -> Self {
        Subs::Inline {
            len: 0,
            ids: [0; INLINE],
        }
    }
}

impl Subs {
    fn as_slice<'a>(&'a self, sets: &'a Sets) -> &'a [u32] {
        match self {
            Subs::Inline { len, ids } => ids.get(..usize::from(*len)).unwrap_or_default(),
            Subs::Heap(at) => sets.sets.get(*at as usize).map_or(&[], Vec::as_slice),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Subs::Inline { len: 0, .. })
    }

    /// Adds `client`; false when it was there.
    fn insert(&mut self, client: u32, sets: &mut Sets) -> bool {
        let Err(at) = self.as_slice(sets).binary_search(&client) else {
            return false;
        };
        match self {
            Subs::Inline { len, ids } if usize::from(*len) < INLINE => {
                let n = usize::from(*len);
                ids.copy_within(at..n, at + 1);
                ids[at] = client;
                *len += 1;
            }
            Subs::Inline { ids, .. } => {
                let mut heap = Vec::with_capacity(INLINE * 2);
                heap.extend_from_slice(ids);
                heap.insert(at, client);
                *self = Subs::Heap(sets.add(heap));
            }
            Subs::Heap(index) => {
                if let Some(heap) = sets.sets.get_mut(*index as usize) {
                    heap.insert(at, client);
                }
            }
        }
        true
    }

    /// Removes `client`; false when it was not there. A set that fits
    /// inline again goes back inline, releasing its memory.
    fn remove(&mut self, client: u32, sets: &mut Sets) -> bool {
        let Ok(at) = self.as_slice(sets).binary_search(&client) else {
            return false;
        };
        match self {
            Subs::Inline { len, ids } => {
                ids.copy_within(at + 1..usize::from(*len), at);
                *len -= 1;
            }
            Subs::Heap(index) => {
                let index = *index;
                let Some(heap) = sets.sets.get_mut(index as usize) else {
                    return false;
                };
                heap.remove(at);
                if heap.len() <= INLINE {
                    let mut inline = [0; INLINE];
                    inline[..heap.len()].copy_from_slice(heap);
                    *self = Subs::Inline {
                        len: heap.len() as u8,
                        ids: inline,
                    };
                    sets.release(index);
                } else if heap.len() * 4 < heap.capacity() {
                    heap.shrink_to(heap.len() * 2);
                }
            }
        }
        true
    }
}

impl Sets {
    /// Stores `set`; its index.
    fn add(&mut self, set: Vec<u32>) -> u32 {
        match self.free.pop() {
            Some(at) => {
                self.sets[at as usize] = set;
                at
            }
            None => {
                self.sets.push(set);
                // At most one set per node.
                u32::try_from(self.sets.len() - 1).unwrap_or(NONE)
            }
        }
    }

    /// Frees the set at `at`.
    fn release(&mut self, at: u32) {
        if let Some(set) = self.sets.get_mut(at as usize) {
            *set = Vec::new();
            self.free.push(at);
        }
    }
}

/// Interned literal levels, reference counted by the edges using them.
#[derive(Debug, Default)]
struct Levels {
    /// Level texts by id; a free slot has no references.
    slots: Vec<LevelSlot>,
    free: Vec<u32>,
    /// Ids, hashed by their text with a per-process random seed
    /// (foldhash: a topic level is hashed once per lookup, so its speed is
    /// the routing speed).
    table: HashTable<u32>,
    state: DefaultHashBuilder,
}

#[derive(Debug)]
struct LevelSlot {
    name: Box<str>,
    refs: u32,
}

impl Levels {
    /// The id of `text`, when interned.
    fn find(&self, text: &str) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(self.state.hash_one(text), |&id| {
                slots.get(id as usize).is_some_and(|s| &*s.name == text)
            })
            .copied()
    }

    /// The id of `text`, interned when new, with one more reference.
    fn acquire(&mut self, text: &str) -> u32 {
        if let Some(id) = self.find(text) {
            self.slots[id as usize].refs += 1;
            return id;
        }
        let slot = LevelSlot {
            name: text.into(),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                // Bounded like the nodes (one level per edge at most).
                u32::try_from(self.slots.len() - 1).unwrap_or(NONE)
            }
        };
        let (slots, state) = (&self.slots, &self.state);
        self.table.insert_unique(state.hash_one(text), id, |&id| {
            state.hash_one(slots.get(id as usize).map_or("", |s| &*s.name))
        });
        id
    }

    /// Drops one reference to `id`, forgetting the text with the last.
    fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        slot.refs -= 1;
        if slot.refs > 0 {
            return;
        }
        let name = std::mem::take(&mut slot.name);
        if let Ok(entry) = self
            .table
            .find_entry(self.state.hash_one(&*name), |&x| x == id)
        {
            entry.remove();
        }
        self.free.push(id);
    }

    /// The text of an interned level.
    fn name(&self, id: u32) -> &str {
        self.slots.get(id as usize).map_or("", |s| &s.name)
    }
}

/// The interned ids of a topic's first levels, looked up once per lookup.
struct Memo {
    ids: [Option<Option<u32>>; MEMO_LEVELS],
}

impl Memo {
    fn new() -> Self {
        Self {
            ids: [None; MEMO_LEVELS],
        }
    }

    /// The id of `level`, the topic's level at `depth`.
    fn level(&mut self, levels: &Levels, depth: usize, level: &str) -> Option<u32> {
        match self.ids.get_mut(depth) {
            Some(Some(known)) => *known,
            Some(slot) => *slot.insert(levels.find(level)),
            None => levels.find(level),
        }
    }
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
mod tests;
