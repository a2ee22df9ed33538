//! `psrt-cli --top`: a live full-screen view of the busiest topics.
//!
//! Subscribes to `-t` (default `#`), counts every received message per
//! topic client-side in a bounded sketch, and redraws once per second.
//!
//! * `state`: counts, rates, sort and key handling, without a terminal.
//! * `view`: drawing that state with ratatui (testable on `TestBackend`).
//!
//! The terminal is put back (raw mode off, main screen) on `q`, Ctrl-C,
//! errors and panics: [`TerminalGuard`] restores it on drop and ratatui's
//! panic hook before a panic message prints.

mod state;
mod view;

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;

pub use state::{KeyAction, Rates, TopRow, TopState};
pub use view::render;

use super::args::Args;
use super::{CliError, connect, connect_options, subscribe_each};

/// Topic subscribed to when `-t` is not given.
const ALL_TOPICS: &str = "#";
/// Topics tracked at most; heavier ones are guaranteed to be among them.
const CAPACITY: usize = 1024;
/// How often the counts become a new snapshot and the screen redraws.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the key reader waits for input before checking whether the
/// view has ended.
const KEY_POLL: Duration = Duration::from_millis(100);
/// Terminal events buffered between the key reader and the view loop.
const KEY_QUEUE: usize = 16;

/// Runs the view until `q`, Ctrl-C or SIGINT; the server closing the
/// session is an error.
pub async fn top(args: &Args) -> Result<(), CliError> {
    let filters: Vec<String> = if args.topics.is_empty() {
        vec![String::from(ALL_TOPICS)]
    } else {
        args.topics.clone()
    };
    let client = connect(args, connect_options(args)?).await?;
    let messages = client.take_messages().ok_or(CliError::StreamEnded)?;
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    subscribe_each(&client, &refs).await?;
    let mut state = TopState::new(&args.target, &filters, CAPACITY);
    let mut terminal = TerminalGuard::enter().map_err(CliError::Terminal)?;
    let mut keys = spawn_key_reader();
    let mut ticker = tokio::time::interval(REFRESH);
    let mut last_tick = Instant::now();
    loop {
        tokio::select! {
            message = messages.recv() => {
                let message = message.map_err(|_| CliError::StreamEnded)?;
                let topic = String::from_utf8_lossy(&message.topic);
                state.record(&topic, message.payload.len() as u64);
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                state.tick(now.duration_since(last_tick));
                last_tick = now;
                terminal.draw(&state)?;
            }
            event = keys.recv() => match on_event(&mut state, event)? {
                KeyAction::Quit => break,
                KeyAction::Redraw => terminal.draw(&state)?,
                KeyAction::Ignore => {}
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(terminal);
    client.bye().await?;
    Ok(())
}

/// What a terminal event means for the loop: keys go to the state, a
/// resize redraws, a closed reader quits, a read error fails.
fn on_event(state: &mut TopState, event: Option<io::Result<Event>>) -> Result<KeyAction, CliError> {
    match event {
        None => Ok(KeyAction::Quit),
        Some(Err(err)) => Err(CliError::Terminal(err)),
        Some(Ok(Event::Key(key))) => Ok(state.handle_key(key)),
        Some(Ok(Event::Resize(..))) => Ok(KeyAction::Redraw),
        Some(Ok(_)) => Ok(KeyAction::Ignore),
    }
}

/// Reads terminal events on a thread of its own (crossterm's reads
/// block) into a bounded channel; the thread ends soon after the receiver
/// is dropped.
fn spawn_key_reader() -> mpsc::Receiver<io::Result<Event>> {
    let (events, receiver) = mpsc::channel(KEY_QUEUE);
    std::thread::spawn(move || {
        loop {
            let next = match event::poll(KEY_POLL) {
                Ok(false) if events.is_closed() => return,
                Ok(false) => continue,
                Ok(true) => event::read(),
                Err(err) => Err(err),
            };
            let failed = next.is_err();
            if events.blocking_send(next).is_err() || failed {
                return;
            }
        }
    });
    receiver
}

/// The full-screen terminal; dropping it restores the terminal.
struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen (and installs ratatui's
    /// restoring panic hook); a half-done setup is undone on failure.
    fn enter() -> io::Result<Self> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(err) => {
                ratatui::restore();
                Err(err)
            }
        }
    }

    /// Redraws the whole view.
    fn draw(&mut self, state: &TopState) -> Result<(), CliError> {
        self.terminal
            .draw(|frame| render(frame, state))
            .map(drop)
            .map_err(CliError::Terminal)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
