//! Arbitrary bytes as a FOCUS ledger and statement (split at the first NUL): the reader
//! never panics, and whenever the streaming merge join accepts the files, the in-memory
//! hash join gives the same report.
#![no_main]

use std::collections::HashMap;

use alliance_core::reconcile::{reconcile, reconcile_sorted, FocusReader, Tolerance};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ledger, statement) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    let (Ok(l), Ok(s)) = (FocusReader::new(ledger), FocusReader::new(statement)) else {
        return;
    };
    let merged = reconcile_sorted(l, s, Tolerance::default(), &HashMap::new());
    if let Ok(merged) = merged {
        let (Ok(l), Ok(s)) = (FocusReader::new(ledger), FocusReader::new(statement)) else {
            panic!("a file read once must read again");
        };
        let hashed = reconcile(l, s, Tolerance::default(), &HashMap::new(), &HashMap::new())
            .expect("files the merge join accepted are valid");
        assert_eq!(merged, hashed, "the merge join and the hash join disagree");
    }
});
