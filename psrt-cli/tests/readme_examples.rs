//! Every psrt-cli command the README prints is accepted by the command
//! line as printed (the quick start's `cargo run -p psrt-cli -- ...` lines
//! and the psrt-cli section's examples).

use clap::Parser;
use psrt_cli::Args;

const README: &str = include_str!("../../README.md");

/// Splits a shell line into words: whitespace separates, single quotes
/// group, and a `#` starting a word begins a comment.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '#' if !quoted && !started => break,
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The arguments of every psrt-cli command in the README's shell blocks.
fn examples() -> Vec<Vec<String>> {
    let mut in_shell = false;
    let mut found = Vec::new();
    for line in README.lines() {
        if line.starts_with("```") {
            in_shell = line == "```sh";
            continue;
        }
        if !in_shell {
            continue;
        }
        let words = words(line);
        let args = match words.iter().position(|w| w == "--") {
            Some(dash) if words.iter().any(|w| w == "psrt-cli") => &words[dash + 1..],
            _ if words.first().is_some_and(|w| w == "psrt-cli") => &words[1..],
            _ => continue,
        };
        found.push(args.to_vec());
    }
    found
}

#[test]
fn shell_words_follow_quotes_and_comments() {
    assert_eq!(
        words("psrt-cli h -t 'plant/#'   # subscribe"),
        ["psrt-cli", "h", "-t", "plant/#"]
    );
    assert_eq!(words("a b#c"), ["a", "b#c"]);
}

#[test]
fn every_readme_example_parses() {
    let examples = examples();
    assert!(examples.len() >= 10, "examples found: {examples:?}");
    for args in examples {
        let argv = std::iter::once("psrt-cli".to_owned()).chain(args.iter().cloned());
        if let Err(err) = Args::try_parse_from(argv) {
            panic!(
                "README example `psrt-cli {}` is refused:\n{err}",
                args.join(" ")
            );
        }
    }
}
