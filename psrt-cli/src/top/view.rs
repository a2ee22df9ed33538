//! Drawing the `--top` state: a header (server, filters, sort, totals,
//! keys) and a table of the busiest topics, as many as fit.

use indicatif::{HumanBytes, HumanCount};
use psrt_proto::topk::SortBy;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table};

use super::state::{TopRow, TopState};

/// Widths of the number columns.
const NUMBER_COLUMN: u16 = 14;

/// Draws `state` over the whole frame.
pub fn render(frame: &mut Frame, state: &TopState) {
    let [header, table] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(frame.area());
    frame.render_widget(Paragraph::new(header_lines(state)), header);
    frame.render_widget(topic_table(state), table);
}

/// The two header lines.
fn header_lines(state: &TopState) -> Vec<Line<'static>> {
    let total = state.total_rate();
    let first = format!(
        "psrt top: {}  topics: {}  sort: {}  total: {:.1} msg/s, {}/s",
        state.server(),
        state.filters().join(","),
        sort_name(state.sort()),
        total.messages,
        HumanBytes(total.bytes as u64),
    );
    let keys = "s: sort by messages/bytes  q: quit";
    vec![
        Line::from(first),
        Line::styled(keys, Style::new().add_modifier(Modifier::DIM)),
    ]
}

/// The table: the header row marks the sort column.
fn topic_table(state: &TopState) -> Table<'static> {
    let mark = |column: SortBy, name: &str| {
        if state.sort() == column {
            format!("{name} ▼")
        } else {
            name.to_owned()
        }
    };
    let header = Row::new([
        String::from("topic"),
        mark(SortBy::Messages, "messages"),
        String::from("msg/s"),
        mark(SortBy::Bytes, "bytes"),
        String::from("bytes/s"),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED));
    let widths = [
        Constraint::Min(20),
        Constraint::Length(NUMBER_COLUMN),
        Constraint::Length(NUMBER_COLUMN),
        Constraint::Length(NUMBER_COLUMN),
        Constraint::Length(NUMBER_COLUMN),
    ];
    Table::new(state.rows().iter().map(table_row), widths).header(header)
}

/// One topic's cells; an inexact count (the topic entered the sketch by
/// eviction) is marked `~`.
fn table_row(row: &TopRow) -> Row<'static> {
    let approx = if row.error > 0 { "~" } else { "" };
    Row::new([
        row.topic.clone(),
        format!("{approx}{}", HumanCount(row.messages)),
        format!("{:.1}", row.messages_rate),
        HumanBytes(row.bytes).to_string(),
        format!("{}/s", HumanBytes(row.bytes_rate as u64)),
    ])
}

fn sort_name(sort: SortBy) -> &'static str {
    match sort {
        SortBy::Messages => "messages",
        SortBy::Bytes => "bytes",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn screen(state: &TopState) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(100, 8)).unwrap();
        terminal.draw(|frame| render(frame, state)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn header_and_rows_show_counts_and_units() {
        let mut state = TopState::new("h:1", &[String::from("a/#")], 8);
        for _ in 0..2048 {
            state.record("a/b", 1024);
        }
        state.tick(Duration::from_secs(2));
        let lines = screen(&state);
        assert!(lines[0].contains("h:1"), "{}", lines[0]);
        assert!(lines[0].contains("topics: a/#"), "{}", lines[0]);
        assert!(lines[0].contains("sort: messages"), "{}", lines[0]);
        assert!(lines[0].contains("1024.0 msg/s"), "{}", lines[0]);
        assert!(lines[2].contains("messages ▼"), "{}", lines[2]);
        let row = &lines[3];
        for cell in ["a/b", "2,048", "1024.0", "2.00 MiB", "1.00 MiB/s"] {
            assert!(row.contains(cell), "{cell} missing from {row}");
        }
    }
}
