//! The "top topics" counter behind the live view: the busiest topics in a
//! fixed amount of memory, however many distinct topics are published.
//!
//! A space-saving sketch (Metwally et al.): at most `capacity` topics are
//! tracked. A topic already tracked has its counts bumped; a new one, once
//! the table is full, replaces the topic with the fewest messages and
//! inherits its message count (plus one), which is recorded as the entry's
//! `error`. Counts therefore never under-estimate, over-estimate by at most
//! `error`, and every topic with more than `total / capacity` messages is
//! guaranteed to be tracked. While no more than `capacity` distinct topics
//! have been seen, every count is exact.
//!
//! The entries sit in a binary min-heap on the message count, indexed by a
//! [`IndexMap`] whose positions never move, so a hit costs one hash lookup
//! and (rarely) a few swaps, and an eviction costs one string allocation and
//! O(log capacity) swaps.

use hashbrown::DefaultHashBuilder;
use indexmap::IndexMap;

use crate::stats::TopicStat;

/// Which count [`TopTopics::top`] ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Messages published (the sketch's own ordering).
    Messages,
    /// Payload bytes published.
    Bytes,
}

/// Bounded counter of the most published topics.
///
/// `bytes` of an entry counts only the payloads seen since the topic last
/// entered the table: exact when `error` is 0, otherwise a lower bound.
#[derive(Debug, Clone)]
pub struct TopTopics {
    capacity: usize,
    /// The tracked topics; an entry keeps its position until
    /// [`TopTopics::clear`] (eviction replaces the key in place). Hashed
    /// with hashbrown's default hasher (foldhash, randomly seeded) rather
    /// than SipHash: every publish looks its topic up here.
    slots: IndexMap<String, Slot, DefaultHashBuilder>,
    /// Positions in `slots`, as a min-heap on `messages`.
    heap: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Slot {
    messages: u64,
    bytes: u64,
    error: u64,
    /// This slot's position in `heap`.
    heap_pos: usize,
}

impl TopTopics {
    /// A counter tracking at most `capacity` topics (0 tracks nothing).
    pub fn new(capacity: usize) -> Self {
        TopTopics {
            capacity,
            slots: IndexMap::with_capacity_and_hasher(capacity, DefaultHashBuilder::default()),
            heap: Vec::with_capacity(capacity),
        }
    }

    /// Counts one message of `bytes` payload bytes published to `topic`.
    /// Allocates nothing when the topic is already tracked.
    pub fn record(&mut self, topic: &str, bytes: u64) {
        if let Some(slot) = self.slots.get_index_of(topic) {
            self.bump(slot, 1, bytes);
        } else if self.slots.len() < self.capacity {
            self.admit(topic, bytes);
        } else {
            self.replace_min(topic, bytes);
        }
    }

    /// The `n` busiest tracked topics by `by`, busiest first (ties by
    /// topic name, so the view is stable).
    pub fn top(&self, n: usize, by: SortBy) -> Vec<TopicStat> {
        let mut stats: Vec<TopicStat> = self
            .slots
            .iter()
            .map(|(topic, slot)| TopicStat {
                topic: topic.clone(),
                messages: slot.messages,
                bytes: slot.bytes,
                error: slot.error,
            })
            .collect();
        let key = |s: &TopicStat| match by {
            SortBy::Messages => s.messages,
            SortBy::Bytes => s.bytes,
        };
        stats.sort_unstable_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.topic.cmp(&b.topic)));
        stats.truncate(n);
        stats
    }

    /// Forgets every topic (keeps the allocated capacity).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.heap.clear();
    }

    /// Number of topics tracked now (at most the capacity).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn admit(&mut self, topic: &str, bytes: u64) {
        let slot = self.slots.len();
        let entry = Slot {
            messages: 1,
            bytes,
            error: 0,
            heap_pos: self.heap.len(),
        };
        self.slots.insert(topic.to_owned(), entry);
        self.heap.push(slot);
        self.sift_up(self.heap.len() - 1);
    }

    /// Space-saving eviction: the least counted topic makes room for
    /// `topic`, which inherits its message count as error.
    fn replace_min(&mut self, topic: &str, bytes: u64) {
        let Some(&slot) = self.heap.first() else {
            return;
        };
        // `record` found no entry for `topic`, so the key cannot clash.
        if self.slots.replace_index(slot, topic.to_owned()).is_err() {
            return;
        }
        let Some((_, entry)) = self.slots.get_index_mut(slot) else {
            return;
        };
        entry.error = entry.messages;
        entry.bytes = 0;
        self.bump(slot, 1, bytes);
    }

    fn bump(&mut self, slot: usize, messages: u64, bytes: u64) {
        let Some((_, entry)) = self.slots.get_index_mut(slot) else {
            return;
        };
        entry.messages = entry.messages.saturating_add(messages);
        entry.bytes = entry.bytes.saturating_add(bytes);
        let pos = entry.heap_pos;
        self.sift_down(pos);
    }

    fn messages_at(&self, pos: usize) -> u64 {
        self.heap
            .get(pos)
            .and_then(|&slot| self.slots.get_index(slot))
            .map_or(u64::MAX, |(_, s)| s.messages)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for pos in [a, b] {
            let slot = self.heap.get(pos).copied();
            if let Some((_, entry)) = slot.and_then(|s| self.slots.get_index_mut(s)) {
                entry.heap_pos = pos;
            }
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.messages_at(parent) <= self.messages_at(pos) {
                return;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let left = 2 * pos + 1;
            let right = left + 1;
            let mut smallest = pos;
            if self.messages_at(left) < self.messages_at(smallest) {
                smallest = left;
            }
            if self.messages_at(right) < self.messages_at(smallest) {
                smallest = right;
            }
            if smallest == pos {
                return;
            }
            self.swap(pos, smallest);
            pos = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(top: &[TopicStat]) -> Vec<(&str, u64, u64, u64)> {
        top.iter()
            .map(|s| (s.topic.as_str(), s.messages, s.bytes, s.error))
            .collect()
    }

    #[test]
    fn counts_are_exact_within_capacity() {
        let mut top = TopTopics::new(4);
        for _ in 0..5 {
            top.record("a", 10);
        }
        top.record("b", 1000);
        for _ in 0..3 {
            top.record("c", 1);
        }
        assert_eq!(
            counts(&top.top(10, SortBy::Messages)),
            vec![("a", 5, 50, 0), ("c", 3, 3, 0), ("b", 1, 1000, 0)]
        );
        assert_eq!(
            counts(&top.top(2, SortBy::Bytes)),
            vec![("b", 1, 1000, 0), ("a", 5, 50, 0)]
        );
    }

    #[test]
    fn heavy_hitters_survive_a_flood_of_one_off_topics() {
        let mut top = TopTopics::new(16);
        for i in 0..10_000_u32 {
            top.record(&format!("noise/{i}"), 1);
            if i % 4 == 0 {
                top.record("hot/one", 100);
            }
            if i % 7 == 0 {
                top.record("hot/two", 5);
            }
        }
        // 13,929 messages over 16 slots: anything above 871 is guaranteed.
        assert_eq!(top.len(), 16);
        let best = top.top(2, SortBy::Messages);
        let names: Vec<&str> = best.iter().map(|s| s.topic.as_str()).collect();
        assert_eq!(names, vec!["hot/one", "hot/two"]);
        for (stat, exact) in best.iter().zip([2500, 1429]) {
            assert!(stat.messages >= exact && stat.messages - stat.error <= exact);
        }
    }

    #[test]
    fn evicted_topics_carry_the_minimum_as_error() {
        let mut top = TopTopics::new(2);
        top.record("a", 1);
        top.record("a", 1);
        top.record("b", 1);
        top.record("c", 7);
        assert_eq!(
            counts(&top.top(5, SortBy::Messages)),
            vec![("a", 2, 2, 0), ("c", 2, 7, 1)]
        );
    }

    #[test]
    fn size_stays_bounded_and_clear_forgets() {
        let mut top = TopTopics::new(8);
        for i in 0..1000 {
            top.record(&format!("t/{}", i % 97), 1);
            assert!(top.len() <= 8);
        }
        let total: u64 = top
            .top(8, SortBy::Messages)
            .iter()
            .map(|s| s.messages)
            .sum();
        assert_eq!(total, 1000, "space-saving keeps the total count");
        top.clear();
        assert!(top.is_empty());
        assert!(top.top(8, SortBy::Bytes).is_empty());
        top.record("x", 3);
        assert_eq!(counts(&top.top(8, SortBy::Bytes)), vec![("x", 1, 3, 0)]);
    }

    #[test]
    fn zero_capacity_tracks_nothing() {
        let mut top = TopTopics::new(0);
        top.record("a", 1);
        assert!(top.is_empty());
    }

    #[test]
    fn the_heap_always_holds_the_minimum_at_its_root() {
        let mut top = TopTopics::new(5);
        for (i, topic) in ["a", "b", "c", "a", "d", "e", "f", "a", "g", "b"]
            .iter()
            .enumerate()
        {
            top.record(topic, i as u64);
            let min = top.slots.values().map(|s| s.messages).min();
            assert_eq!(Some(top.messages_at(0)), min);
            for (pos, &slot) in top.heap.iter().enumerate() {
                assert_eq!(
                    top.slots.get_index(slot).map(|(_, s)| s.heap_pos),
                    Some(pos)
                );
            }
        }
    }
}
