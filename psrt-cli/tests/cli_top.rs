//! psrt-cli --top: the view state fed with messages from a real server,
//! rendered headless on ratatui's `TestBackend`; and, where tmux is
//! installed, the binary in a real terminal (keys, quitting, restoring
//! the terminal).

mod cli_support;

use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::Duration;

use cli_support::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use psrt_cli::top::{KeyAction, TopState, render};
use psrt_runtime_tokio::client::{Client, ClientOptions};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// The rendered screen, one string per line.
fn screen(state: &TopState, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(100, height)).expect("test terminal");
    terminal
        .draw(|frame| render(frame, state))
        .expect("draws headless");
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// The first word of each table line (below the header and column
/// titles): the topics in display order.
fn shown_topics(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .skip(3)
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_messages_render_sorted_and_s_switches_the_sort() {
    let server = start(open_spec()).await;
    let (_observer, mut messages) = observer(&server.tcp(), "t/#").await;
    let publisher = Client::connect(&server.tcp(), ClientOptions::default())
        .await
        .expect("publisher connects");
    let plan = [("t/many", 5, 10), ("t/big", 1, 5000), ("t/mid", 3, 100)];
    let mut total = 0;
    for (topic, count, size) in plan {
        for _ in 0..count {
            publisher
                .publish(topic, vec![b'x'; size])
                .await
                .expect("publish");
            total += 1;
        }
    }
    let mut state = TopState::new(&server.tcp(), &[String::from("t/#")], 16);
    for _ in 0..total {
        let message = next(&mut messages).await;
        let topic = message.topic_str().expect("UTF-8 topic");
        state.record(topic, message.payload.len() as u64);
    }
    state.tick(Duration::from_secs(1));

    let lines = screen(&state, 8);
    assert!(lines[0].contains(&server.tcp()), "{lines:#?}");
    assert!(lines[0].contains("sort: messages"), "{lines:#?}");
    assert!(lines[0].contains("total: 9.0 msg/s"), "{lines:#?}");
    assert!(lines[2].contains("messages ▼"), "{lines:#?}");
    assert_eq!(shown_topics(&lines), ["t/many", "t/mid", "t/big"]);
    let many = &lines[3];
    for cell in ["5", "5.0", "50 B", "50 B/s"] {
        assert!(many.contains(cell), "{cell} missing from {many}");
    }

    assert_eq!(state.handle_key(key('s')), KeyAction::Redraw);
    let lines = screen(&state, 8);
    assert!(lines[0].contains("sort: bytes"), "{lines:#?}");
    assert!(lines[2].contains("bytes ▼"), "{lines:#?}");
    assert_eq!(shown_topics(&lines), ["t/big", "t/mid", "t/many"]);
    assert!(lines[3].contains("4.88 KiB"), "{}", lines[3]);

    assert_eq!(state.handle_key(key('s')), KeyAction::Redraw);
    assert_eq!(
        shown_topics(&screen(&state, 8)),
        ["t/many", "t/mid", "t/big"]
    );
    assert_eq!(state.handle_key(key('x')), KeyAction::Ignore);
    assert_eq!(state.handle_key(key('q')), KeyAction::Quit);
}

#[test]
fn a_flood_of_topics_keeps_the_table_bounded_and_the_hot_ones_on_top() {
    let mut state = TopState::new("h", &[String::from("#")], 16);
    for i in 0..20_000_u32 {
        state.record(&format!("noise/{i}"), 1);
        if i % 5 == 0 {
            state.record("hot/a", 10);
        }
        if i % 9 == 0 {
            state.record("hot/b", 10);
        }
    }
    state.tick(Duration::from_secs(1));
    assert!(state.rows().len() <= 16);
    assert_eq!(state.total_rate().messages, 26_223.0);
    let lines = screen(&state, 6);
    let shown = shown_topics(&lines);
    assert_eq!(shown[..2], ["hot/a", "hot/b"]);
    assert!(shown[2].starts_with("noise/"), "{shown:?}");
    assert!(lines[3].contains("4,000"), "{}", lines[3]);
}

/// A tmux server on a private socket, killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A new private server, or `None` when tmux is not installed.
    fn start(name: &str) -> Option<Tmux> {
        let installed = StdCommand::new("tmux").arg("-V").output();
        if !installed.is_ok_and(|out| out.status.success()) {
            eprintln!("tmux not installed: skipping the terminal test");
            return None;
        }
        let socket = std::env::temp_dir().join(format!("psrt-top-{}-{name}", std::process::id()));
        Some(Tmux { socket })
    }

    fn run(&self, args: &[&str]) -> String {
        let output = StdCommand::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Waits until the screen contains `needle`, calling `poke` between
    /// looks (to publish more messages, say).
    async fn wait_for(&self, needle: &str, mut poke: impl AsyncPoke) -> String {
        for _ in 0..100 {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            poke.poke().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{needle:?} never showed; screen:\n{}", self.screen());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = StdCommand::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Something to do while waiting for the screen.
trait AsyncPoke {
    async fn poke(&mut self);
}

/// Waits without doing anything.
struct Idle;

impl AsyncPoke for Idle {
    async fn poke(&mut self) {}
}

/// Publishes one message to a topic.
struct Publish<'a>(&'a Client, &'a str);

impl AsyncPoke for Publish<'_> {
    async fn poke(&mut self) {
        self.0.publish(self.1, "payload").await.expect("publish");
    }
}

/// The shell line tmux runs: psrt-cli, then its exit status and whether
/// the terminal is back in canonical (cooked) mode, then a pause so the
/// pane can be read.
fn shell_line(addr: &str) -> String {
    format!(
        "{bin} {addr} --top -t 'live/#'; echo \"EXIT=$?\"; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon; sleep 60",
        bin = env!("CARGO_BIN_EXE_psrt-cli"),
    )
}

async fn quits_and_restores_the_terminal_on(name: &str, quit_key: &str) {
    let Some(tmux) = Tmux::start(name) else {
        return;
    };
    let server = start(open_spec()).await;
    let publisher = Client::connect(&server.tcp(), ClientOptions::default())
        .await
        .expect("publisher connects");
    let line = shell_line(&server.tcp());
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "20",
        &line,
    ]);
    let screen = tmux
        .wait_for("live/topic", Publish(&publisher, "live/topic"))
        .await;
    assert!(screen.contains("sort: messages"), "{screen}");
    tmux.run(&["send-keys", "-t", "top", "s"]);
    let screen = tmux.wait_for("sort: bytes", Idle).await;
    assert!(screen.contains("bytes ▼"), "{screen}");
    tmux.run(&["send-keys", "-t", "top", quit_key]);
    let screen = tmux.wait_for("EXIT=", Idle).await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    let after = tmux.wait_for("icanon", Idle).await;
    let restored = after.lines().any(|line| line.trim() == "icanon");
    assert!(restored, "raw mode left on:\n{after}");
    assert!(
        !after.contains("live/topic"),
        "still on the alternate screen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_quits_and_restores_the_terminal() {
    quits_and_restores_the_terminal_on("q", "q").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_quits_and_restores_the_terminal() {
    quits_and_restores_the_terminal_on("ctrl-c", "C-c").await;
}
