//! `generate`: reproducible from its seed, and every line is a valid event.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use social_schemas::{Limits, parse_event};

fn generate(args: &[&str]) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_social-realtime"))
        .arg("generate")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn same_seed_same_bytes_and_every_line_validates() {
    let first = generate(&["--seed", "7", "--count", "100000"]);
    let second = generate(&["--seed", "7", "--count", "100000"]);
    assert!(first == second, "two runs with --seed 7 differ");
    let lines: Vec<&[u8]> = first
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 100_000);
    let limits = Limits::default();
    let mut ids = std::collections::HashSet::new();
    for (number, line) in lines.iter().enumerate() {
        let event = parse_event(line, &limits).unwrap_or_else(|error| {
            panic!("line {}: {error}: {}", number + 1, String::from_utf8_lossy(line))
        });
        assert!(
            ids.insert((event.source.clone(), event.id.clone())),
            "duplicate id on line {}",
            number + 1
        );
    }
    let other_seed = generate(&["--seed", "8", "--count", "1000"]);
    assert_ne!(other_seed, first[..other_seed.len().min(first.len())].to_vec());
}
