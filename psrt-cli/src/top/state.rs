//! What the `--top` view shows, without a terminal: per-topic counts in a
//! bounded [`TopTopics`] sketch, rates from the previous snapshot, the sort
//! order, and the key handling. Time comes in as the elapsed interval, so
//! everything here is deterministic and unit-testable.

use std::collections::HashMap;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use psrt_proto::stats::TopicStat;
use psrt_proto::topk::{SortBy, TopTopics};

/// One line of the table: a topic's counts and its rates over the last
/// interval.
#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    /// The topic.
    pub topic: String,
    /// Messages counted (an over-estimate by at most `error`).
    pub messages: u64,
    /// Payload bytes counted.
    pub bytes: u64,
    /// Most `messages` may over-estimate (0: exact).
    pub error: u64,
    /// Messages per second over the last interval.
    pub messages_rate: f64,
    /// Payload bytes per second over the last interval.
    pub bytes_rate: f64,
}

/// What a key press asks the view loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Nothing changed: no redraw needed.
    Ignore,
    /// The state changed: redraw.
    Redraw,
    /// Leave the view (`q`, `Esc`, Ctrl-C).
    Quit,
}

/// The state of the `--top` view.
///
/// Call [`TopState::record`] for every message, [`TopState::tick`] once per
/// refresh with the time since the previous tick, and
/// [`TopState::handle_key`] for key presses; [`super::render`] draws it.
#[derive(Debug, Clone)]
pub struct TopState {
    server: String,
    filters: Vec<String>,
    sort: SortBy,
    topics: TopTopics,
    /// Every message and byte seen, including topics the sketch evicted.
    totals: Counts,
    /// The counts at the previous tick, to compute rates; as many entries
    /// as the sketch tracks, at most.
    previous: HashMap<String, Counts>,
    previous_totals: Counts,
    rows: Vec<TopRow>,
    total_rate: Rates,
}

/// Messages and bytes, as counted at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    messages: u64,
    bytes: u64,
}

/// Messages and bytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Messages per second.
    pub messages: f64,
    /// Bytes per second.
    pub bytes: f64,
}

impl TopState {
    /// A view of `server` subscribed to `filters`, tracking at most
    /// `capacity` topics (memory stays bounded however many flow).
    pub fn new(server: &str, filters: &[String], capacity: usize) -> Self {
        TopState {
            server: server.to_owned(),
            filters: filters.to_vec(),
            sort: SortBy::Messages,
            topics: TopTopics::new(capacity),
            totals: Counts::default(),
            previous: HashMap::with_capacity(capacity),
            previous_totals: Counts::default(),
            rows: Vec::with_capacity(capacity),
            total_rate: Rates::default(),
        }
    }

    /// The server as given on the command line.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The subscribed filters.
    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    /// The current sort order of [`TopState::rows`].
    pub fn sort(&self) -> SortBy {
        self.sort
    }

    /// The rows as of the last tick, busiest first by [`TopState::sort`].
    pub fn rows(&self) -> &[TopRow] {
        &self.rows
    }

    /// Messages and bytes per second over all topics in the last interval.
    pub fn total_rate(&self) -> Rates {
        self.total_rate
    }

    /// Counts one received message.
    pub fn record(&mut self, topic: &str, bytes: u64) {
        self.topics.record(topic, bytes);
        self.totals.messages = self.totals.messages.saturating_add(1);
        self.totals.bytes = self.totals.bytes.saturating_add(bytes);
    }

    /// Takes a snapshot: recomputes the rows and their rates over
    /// `elapsed`, the time since the previous tick (or since counting
    /// started). A zero interval leaves the rates at zero.
    pub fn tick(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let stats = self.topics.top(self.topics.len(), SortBy::Messages);
        self.rows = stats
            .iter()
            .map(|stat| row(stat, self.previous.get(&stat.topic), seconds))
            .collect();
        sort_rows(&mut self.rows, self.sort);
        self.total_rate = rates(self.totals, self.previous_totals, seconds);
        self.previous_totals = self.totals;
        self.previous.clear();
        for stat in stats {
            let counts = Counts {
                messages: stat.messages,
                bytes: stat.bytes,
            };
            self.previous.insert(stat.topic, counts);
        }
    }

    /// Switches the sort between messages and bytes and re-sorts the rows
    /// now (rates are kept until the next tick).
    pub fn toggle_sort(&mut self) {
        self.sort = match self.sort {
            SortBy::Messages => SortBy::Bytes,
            SortBy::Bytes => SortBy::Messages,
        };
        sort_rows(&mut self.rows, self.sort);
    }

    /// Applies a key press: `s` toggles the sort; `q`, `Esc` and Ctrl-C
    /// quit (raw mode turns Ctrl-C into a key, not a signal). Key releases
    /// and repeats are ignored.
    pub fn handle_key(&mut self, key: KeyEvent) -> KeyAction {
        if key.kind != KeyEventKind::Press {
            return KeyAction::Ignore;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => KeyAction::Quit,
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => KeyAction::Quit,
            KeyCode::Char('s' | 'S') if !ctrl => {
                self.toggle_sort();
                KeyAction::Redraw
            }
            _ => KeyAction::Ignore,
        }
    }
}

/// A row from a sketch entry and its counts at the previous tick. A topic
/// that was not tracked then entered the sketch since: its rate counts
/// only what it gained after entering (the inherited `error` is not news).
fn row(stat: &TopicStat, previous: Option<&Counts>, seconds: f64) -> TopRow {
    let now = Counts {
        messages: stat.messages,
        bytes: stat.bytes,
    };
    let before = previous.copied().unwrap_or(Counts {
        messages: stat.error,
        bytes: 0,
    });
    let rate = rates(now, before, seconds);
    TopRow {
        topic: stat.topic.clone(),
        messages: stat.messages,
        bytes: stat.bytes,
        error: stat.error,
        messages_rate: rate.messages,
        bytes_rate: rate.bytes,
    }
}

/// Per-second growth from `before` to `now`; a count that went down (the
/// topic was evicted and came back) counts as no growth.
fn rates(now: Counts, before: Counts, seconds: f64) -> Rates {
    if seconds <= 0.0 {
        return Rates::default();
    }
    Rates {
        messages: now.messages.saturating_sub(before.messages) as f64 / seconds,
        bytes: now.bytes.saturating_sub(before.bytes) as f64 / seconds,
    }
}

/// Busiest first by `by`, ties by topic name so the order is stable.
fn sort_rows(rows: &mut [TopRow], by: SortBy) {
    let key = |row: &TopRow| match by {
        SortBy::Messages => row.messages,
        SortBy::Bytes => row.bytes,
    };
    rows.sort_unstable_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.topic.cmp(&b.topic)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TopState {
        TopState::new("h:1", &[String::from("#")], 8)
    }

    fn names(state: &TopState) -> Vec<&str> {
        state.rows().iter().map(|r| r.topic.as_str()).collect()
    }

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn rows_appear_on_tick_sorted_by_messages_then_bytes() {
        let mut top = state();
        for _ in 0..3 {
            top.record("many/small", 1);
        }
        top.record("one/big", 1000);
        assert!(top.rows().is_empty(), "rows change only on tick");
        top.tick(Duration::from_secs(1));
        assert_eq!(names(&top), ["many/small", "one/big"]);
        top.toggle_sort();
        assert_eq!(top.sort(), SortBy::Bytes);
        assert_eq!(names(&top), ["one/big", "many/small"]);
        top.tick(Duration::from_secs(1));
        assert_eq!(
            names(&top),
            ["one/big", "many/small"],
            "sort survives ticks"
        );
    }

    #[test]
    fn rates_are_growth_since_the_previous_tick() {
        let mut top = state();
        for _ in 0..10 {
            top.record("a", 100);
        }
        top.tick(Duration::from_secs(2));
        let first = &top.rows()[0];
        assert_eq!((first.messages_rate, first.bytes_rate), (5.0, 500.0));
        assert_eq!(top.total_rate().messages, 5.0);
        for _ in 0..4 {
            top.record("a", 100);
        }
        top.tick(Duration::from_millis(500));
        let second = &top.rows()[0];
        assert_eq!(second.messages, 14);
        assert_eq!((second.messages_rate, second.bytes_rate), (8.0, 800.0));
        assert_eq!(top.total_rate().bytes, 800.0);
        top.tick(Duration::ZERO);
        assert_eq!(top.rows()[0].messages_rate, 0.0);
        assert_eq!(top.total_rate(), Rates::default());
    }

    #[test]
    fn a_topic_entering_by_eviction_does_not_count_its_inherited_error() {
        let mut top = TopState::new("h", &[], 1);
        for _ in 0..5 {
            top.record("old", 1);
        }
        top.tick(Duration::from_secs(1));
        top.record("new", 1);
        top.tick(Duration::from_secs(1));
        let row = &top.rows()[0];
        assert_eq!((row.topic.as_str(), row.messages, row.error), ("new", 6, 5));
        assert_eq!(row.messages_rate, 1.0);
        assert_eq!(top.rows().len(), 1, "bounded by the capacity");
        assert_eq!(top.total_rate().messages, 1.0);
    }

    #[test]
    fn keys_toggle_sort_and_quit() {
        let mut top = state();
        let s = press(KeyCode::Char('s'), KeyModifiers::NONE);
        assert_eq!(top.handle_key(s), KeyAction::Redraw);
        assert_eq!(top.sort(), SortBy::Bytes);
        assert_eq!(top.handle_key(s), KeyAction::Redraw);
        assert_eq!(top.sort(), SortBy::Messages);
        let mut release = s;
        release.kind = KeyEventKind::Release;
        assert_eq!(top.handle_key(release), KeyAction::Ignore);
        assert_eq!(top.sort(), SortBy::Messages);
        for quit in [
            press(KeyCode::Char('q'), KeyModifiers::NONE),
            press(KeyCode::Esc, KeyModifiers::NONE),
            press(KeyCode::Char('c'), KeyModifiers::CONTROL),
        ] {
            assert_eq!(top.handle_key(quit), KeyAction::Quit, "{quit:?}");
        }
        let plain_c = press(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(top.handle_key(plain_c), KeyAction::Ignore);
    }
}
