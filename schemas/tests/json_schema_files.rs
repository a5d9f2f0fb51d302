//! The checked-in files under `schemas/json/` equal the schemas generated from the Rust types.
//! `UPDATE_SCHEMAS=1 cargo test -p social-schemas --test json_schema_files` rewrites them.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::path::PathBuf;

use social_schemas::EventType;
use social_schemas::json_schema::{event_schema_text, schema_file_name};

fn json_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
}

#[test]
fn schema_files_match_the_rust_types() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let dir = json_dir();
    let mut stale = Vec::new();
    for ty in EventType::ALL {
        let path = dir.join(schema_file_name(ty));
        let want = event_schema_text(ty);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    // No stray files for types that no longer exist.
    if !update {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !EventType::ALL.iter().any(|t| schema_file_name(*t) == name) {
                stale.push(format!(
                    "{}: no event type of that name",
                    dir.join(name).display()
                ));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "JSON Schema files are out of date with the Rust types:\n  {}\nRegenerate them with: \
         UPDATE_SCHEMAS=1 cargo test -p social-schemas --test json_schema_files",
        stale.join("\n  ")
    );
}

#[test]
fn schemas_name_their_type_as_a_const() {
    for ty in EventType::ALL {
        let schema = social_schemas::json_schema::event_schema(ty);
        let v = schema.as_value();
        assert_eq!(v["properties"]["type"]["const"], ty.as_str());
        assert_eq!(v["title"], ty.as_str());
        let required: Vec<&str> = v["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        for f in ["specversion", "id", "source", "type", "time", "data"] {
            assert!(required.contains(&f), "{ty}: {f} not required");
        }
    }
}
